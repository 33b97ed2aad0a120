"""The rolling-upgrade rule (docs/deployment.md, "Upgrade"): a migration's upgrade only *expands* the schema —
new tables, indexes, nullable columns or columns with a server default — so nodes of the previous release keep
working on it while the nodes restart one by one. A migration that must contract (drop, rename, alter, a NOT NULL
column without a default) says so with a line ``Contract: <why, and the upgrade order it needs>`` in its docstring,
and the release notes tell operators to stop every node for it."""

import ast
import importlib.util
import inspect
import re
from pathlib import Path

import pytest

VERSIONS = Path(__file__).resolve().parents[3] / "gateway" / "migrations" / "versions"
CONTRACTING = re.compile(r"\b(drop_\w+|alter_column|rename_table)\(")


def _upgrade_source(path: Path) -> tuple[str, str]:
    spec = importlib.util.spec_from_file_location(f"migration_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return inspect.getsource(module.upgrade), module.__doc__ or ""


def _required_columns_without_default(source: str) -> list[str]:
    """Columns that ``add_column`` adds NOT NULL without a server default (old nodes' INSERTs would fail)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_column":
            for column in (a for a in node.args if isinstance(a, ast.Call)):
                keywords = {k.arg: k.value for k in column.keywords}
                required = isinstance(keywords.get("nullable"), ast.Constant) and keywords["nullable"].value is False
                if required and "server_default" not in keywords:
                    found.append(ast.unparse(column)[:80])
    return found


@pytest.mark.parametrize("path", sorted(VERSIONS.glob("*.py")), ids=lambda p: p.stem[:4])
def test_each_upgrade_only_expands_unless_it_says_it_contracts(path: Path) -> None:
    source, doc = _upgrade_source(path)
    if re.search(r"^Contract: \S", doc, re.M):
        return
    statements = [m.group(1) for m in CONTRACTING.finditer(source)]
    assert statements == [], f"{path.name} contracts the schema ({statements}) without a 'Contract:' line"
    assert _required_columns_without_default(source) == [], f"{path.name} adds NOT NULL columns without a default"


def test_the_rule_catches_a_contracting_migration(tmp_path: Path) -> None:
    contracting = tmp_path / "0099_drop.py"
    contracting.write_text(
        '"""drop a column"""\nfrom alembic import op\nimport sqlalchemy as sa\n\n\ndef upgrade() -> None:\n'
        '    op.drop_column("home_session", "source_ip")\n'
        '    op.add_column("home_session", sa.Column("x", sa.Integer(), nullable=False))\n'
    )
    source, _ = _upgrade_source(contracting)
    assert CONTRACTING.search(source)
    assert _required_columns_without_default(source)
