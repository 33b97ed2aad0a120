"""Load and dump policy documents; every problem is reported with its line, column and reason."""

from collections.abc import Iterator
from pathlib import Path as FilePath

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from policy.errors import PolicyError, Problem
from policy.loader import read_yaml
from policy.positions import Path, Positions, dotted
from policy.schema import PolicyDocument

DEFAULT_POLICY_FILE = FilePath(__file__).with_name("default_policy.yaml")


def load_policy(yaml_text: str) -> PolicyDocument:
    """Parse and check a policy document, or raise `PolicyError` listing every problem found."""
    data, positions = read_yaml(yaml_text)
    problems = [_problem(path, mark, "duplicate key: it is already set above") for path, mark in positions.duplicates]
    problems += [_problem(*positions.locate(path), reason) for path, reason in _reference_problems(data)]
    try:
        document = PolicyDocument.model_validate(data)
    except ValidationError as error:
        problems += [_from_pydantic(detail, positions) for detail in error.errors()]
    if problems:
        raise PolicyError(sorted(problems, key=lambda problem: (problem.line, problem.column, problem.reason)))
    return document


def load_default_policy() -> PolicyDocument:
    """The embedded default shipped with the gateway (see docs/policy.md)."""
    return load_policy(DEFAULT_POLICY_FILE.read_text(encoding="utf-8"))


def dump_policy(document: PolicyDocument) -> str:
    """YAML text that `load_policy` reads back as an equal document; defaults are left out."""
    data = {"version": document.version, **document.model_dump(mode="json", exclude_defaults=True)}
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _problem(path: Path, mark: tuple[int, int], reason: str) -> Problem:
    return Problem(mark[0], mark[1], dotted(path), reason)


def _from_pydantic(detail: ErrorDetails, positions: Positions) -> Problem:
    location = detail["loc"]
    path, mark = positions.locate(location)
    if detail["type"] == "extra_forbidden":
        return _problem(path, mark, f"unknown key {location[-1]!r}")
    if detail["type"] == "missing":
        return _problem(path, mark, f"missing required key {location[-1]!r}")
    message = detail["msg"].removeprefix("Value error, ")
    if message.startswith("Input should be "):
        message = f"{detail['input']!r} is not accepted here: expected {message.removeprefix('Input should be ')}"
    return _problem(path, mark, message)


def _reference_problems(data: object) -> Iterator[tuple[Path, str]]:
    """Cross-references pydantic cannot see: app ids (unique, and known where groups use them) and
    display exceptions (only for a rule the same group allows). Tolerant of a malformed document,
    whose shape problems pydantic reports."""
    if not isinstance(data, dict):
        return
    known: set[object] = set()
    for index, app in enumerate(_items(data.get("apps"))):
        app_id = app.get("id") if isinstance(app, dict) else None
        if app_id in known:
            yield ("apps", index, "id"), f"duplicate app id {app_id!r}"
        known.add(app_id)
    groups = data.get("groups")
    seen: dict[str, str] = {}
    for name, group in groups.items() if isinstance(groups, dict) else ():
        if str(name).casefold() in seen:
            yield ("groups", name), f"group {name!r} is {seen[str(name).casefold()]!r} again: AD ignores case"
        seen[str(name).casefold()] = str(name)
        if not isinstance(group, dict):
            continue
        for index, app_id in enumerate(_items(group.get("apps"))):
            if app_id not in known:
                yield ("groups", name, "apps", index), f"unknown app id {app_id!r}: it is not in the apps catalogue"
        display = group.get("display")
        allowed = display if isinstance(display, dict) else {}
        for index, rule in enumerate(_items(group.get("display_exceptions"))):
            if allowed.get(rule) is not True:
                yield (
                    ("groups", name, "display_exceptions", index),
                    f"display exception {rule!r} needs 'display: {{{rule}: true}}' in the same group",
                )


def _items(value: object) -> list[object]:
    return value if isinstance(value, list) else []
