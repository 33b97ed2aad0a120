"""What an import would change: the running policy document against the new one, line by line."""

import difflib
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DiffLine:
    """One line of a unified diff: ``kind`` is ``added``, ``removed``, ``context`` or ``hunk`` (an ``@@`` header)."""

    kind: str
    text: str


def policy_diff(running: str, proposed: str) -> list[DiffLine]:
    """The unified diff (3 lines of context) from ``running`` to ``proposed``; empty when they are the same."""
    lines = difflib.unified_diff(running.splitlines(), proposed.splitlines(), "running", "proposed", lineterm="", n=3)
    diff = []
    for line in list(lines)[2:]:  # the two file-name lines say nothing a person needs
        kind = {"+": "added", "-": "removed", "@": "hunk"}.get(line[:1], "context")
        diff.append(DiffLine(kind, line))
    return diff
