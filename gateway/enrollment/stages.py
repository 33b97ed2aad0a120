"""The order of the vetting stages, and the rule that none is skipped without an override.

Pure functions over the configured stage list: the last stage (``approved``) is where an application arrives when
the stage before it is passed; it is never decided itself.
"""

from gateway.enrollment.errors import StageConflict
from gateway.enrollment.settings import FINAL_STAGE


def first_stage(stages: list[str]) -> str:
    return stages[0]


def next_stage(stages: list[str], current: str) -> str:
    """The stage after ``current``; the final stage has none."""
    position = _position(stages, current)
    if stages[position] == FINAL_STAGE:
        raise StageConflict("the application is already approved; there is no further stage")
    return stages[position + 1]


def check_current(stages: list[str], current: str, asked: str) -> None:
    """Only the stage awaiting a decision may be decided; any other needs an override."""
    _position(stages, asked)
    if asked != current:
        raise StageConflict(
            f"the application is at stage {current!r}, not {asked!r}; decide {current!r} first or use an override"
        )


def skipped_by_override(stages: list[str], current: str, target: str) -> list[str]:
    """The stages an override from ``current`` to ``target`` passes over (it may only move forward)."""
    start, end = _position(stages, current), _position(stages, target)
    if end <= start:
        raise StageConflict(f"an override moves forward only: {target!r} is not after {current!r}")
    return stages[start:end]


def _position(stages: list[str], stage: str) -> int:
    try:
        return stages.index(stage)
    except ValueError:
        raise StageConflict(f"unknown stage {stage!r}; the stages are: {', '.join(stages)}") from None
