"""`sohogw db upgrade` brings a database at any released schema revision to the current one in one command, on
SQLite and PostgreSQL, and `config check` then calls the schema current (before: it says to run the upgrade)."""

import uuid
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from gateway.deployment import probes
from gateway.migrate import alembic_config, current_revisions, upgrade
from gateway.settings import load_settings
from tests.gateway.deployment.conftest import run_sohogw
from tests.support.postgres import create_database

REVISIONS = [
    r.revision for r in reversed(list(ScriptDirectory.from_config(alembic_config("sqlite://")).walk_revisions()))
]
HEAD = REVISIONS[-1]


CASES = [pytest.param(revision, "sqlite", id=f"sqlite-{revision}") for revision in REVISIONS[:-1]] + [
    # PostgreSQL from the oldest schema; test_migrations.py applies every step there one by one.
    pytest.param(REVISIONS[0], "postgres", id=f"postgres-{REVISIONS[0]}", marks=pytest.mark.postgres)
]


@pytest.mark.parametrize(("released", "kind"), CASES)
def test_db_upgrade_from_each_released_schema(
    request: pytest.FixtureRequest, released: str, kind: str, tmp_path: Path
) -> None:
    if kind == "sqlite":
        empty_url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        empty_url = create_database(
            request.getfixturevalue("postgres_admin_url"), f"sohogw_old_{uuid.uuid4().hex[:12]}"
        )
    upgrade(empty_url, released)
    settings = load_settings(data_dir=tmp_path / "data", database_url=empty_url)
    assert "run `sohogw db upgrade`" in probes.database(settings).message
    done = run_sohogw(
        "db", "upgrade", env={"SOHOGW_DATA_DIR": str(settings.data_dir), "SOHOGW_DATABASE_URL": empty_url}
    )
    assert done.returncode == 0, done.stderr
    assert current_revisions(empty_url) == (HEAD,)
    assert f"schema at {HEAD} (current)" in probes.database(settings).message
