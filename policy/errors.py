"""The one error a policy document raises: every problem found, each with where it is and why."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in a policy document, pointing at its line so an admin can fix it."""

    line: int
    """1-based line of the key or list item at fault (0 when the document has no position)."""
    column: int
    """1-based column."""
    path: str
    """Dotted path of the value, e.g. ``groups.SOHO-Agents.idle_timeout``."""
    reason: str

    def __str__(self) -> str:
        where = f"line {self.line}, column {self.column}" if self.line else "policy"
        path = f" ({self.path})" if self.path else ""
        return f"{where}{path}: {self.reason}"


class PolicyError(ValueError):
    """A policy document was refused, or a policy was asked for something it does not grant.

    The message lists every problem, one per line, so an admin fixes them all in one pass.
    """

    def __init__(self, problems: list[Problem] | str) -> None:
        self.problems: tuple[Problem, ...] = (
            (Problem(0, 0, "", problems),) if isinstance(problems, str) else tuple(problems)
        )
        if len(self.problems) == 1:
            message = str(self.problems[0])
        else:
            lines = "\n".join(f"  {problem}" for problem in self.problems)
            message = f"the policy has {len(self.problems)} problems:\n{lines}"
        super().__init__(message)
