"""Transactions only at the edges: a ``.commit()`` appears nowhere in gateway/ but in the helpers of gateway/db.py.

A request, a job or a command commits once through `session_scope`; a refusal that must outlive the rollback of its
request (an audit row, a counted attempt) is kept with `keep_refusal` (docs/architecture.md, "Transactions").
"""

import ast
from pathlib import Path

import gateway

GATEWAY = Path(gateway.__file__).parent
HELPERS = {"db.py": {"session_scope", "keep_refusal", "keep_done"}}
"""The functions allowed to commit, by file."""


def commits_outside(source: str, allowed_functions: set[str]) -> list[int]:
    """Lines of ``.commit()`` calls not inside one of ``allowed_functions``."""
    found: list[int] = []

    def visit(node: ast.AST, inside_allowed: bool) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inside_allowed = inside_allowed or node.name in allowed_functions
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "commit"
            and not inside_allowed
        ):
            found.append(node.lineno)
        for child in ast.iter_child_nodes(node):
            visit(child, inside_allowed)

    visit(ast.parse(source), False)
    return found


def _commits_by_file() -> dict[str, list[int]]:
    found = {}
    for path in sorted(GATEWAY.rglob("*.py")):
        name = path.relative_to(GATEWAY).as_posix()
        if name.startswith("migrations/"):
            continue  # Alembic runs each migration in its own transaction
        lines = commits_outside(path.read_text(), HELPERS.get(name, set()))
        if lines:
            found[name] = lines
    return found


def test_nothing_commits_outside_the_unit_of_work_and_the_refusal_helper() -> None:
    assert _commits_by_file() == {}


def test_the_scan_finds_a_commit_in_a_service_and_spares_the_helpers() -> None:
    service = "def end_it(db):\n    db.flush()\n    db.commit()\n"
    assert commits_outside(service, set()) == [3]
    assert commits_outside(service, {"end_it"}) == []
    assert commits_outside((GATEWAY / "db.py").read_text(), set()) != []  # the helpers do commit: the scan sees it
