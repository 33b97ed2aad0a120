"""The migrations are the schema: applied one revision at a time they keep data, and they match the models."""

import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlmodel import SQLModel, select

import gateway.models  # noqa: F401  (registers every table)
from gateway.audit.service import record, verify_chain
from gateway.clock import as_utc
from gateway.db import make_engine, session_scope
from gateway.migrate import alembic_config, upgrade
from gateway.seats.models import SeatLease
from tests.support.postgres import create_database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return create_database(request.getfixturevalue("postgres_admin_url"), f"sohogw_empty_{uuid.uuid4().hex[:12]}")


def _revisions_oldest_first(url: str) -> list[str]:
    script = ScriptDirectory.from_config(alembic_config(url))
    return [revision.revision for revision in reversed(list(script.walk_revisions()))]


def test_each_revision_applies_on_the_previous_schema_and_keeps_the_audit_chain(empty_db_url: str) -> None:
    revisions = _revisions_oldest_first(empty_db_url)
    upgrade(empty_db_url, revisions[0])
    engine = make_engine(empty_db_url)
    with session_scope(engine) as db:
        record(db, actor="admin", action="ca.init", outcome="success")
    for revision in revisions[1:]:
        upgrade(empty_db_url, revision)
    with session_scope(engine) as db:
        report = verify_chain(db)
    engine.dispose()
    assert report.intact and report.rows_checked == 1


def test_models_and_migrations_describe_the_same_schema(empty_db_url: str) -> None:
    upgrade(empty_db_url)
    engine = make_engine(empty_db_url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    engine.dispose()
    assert differences == []


def _insert_filled(db: sqlite3.Connection, table: str, **given: object) -> None:
    """A row of ``table`` with ``given`` values and a placeholder of the right type in every other NOT NULL column."""
    names, values = [], []
    for _cid, name, declared, not_null, default, _pk in db.execute(f"PRAGMA table_info({table})"):
        if name in given:
            value = given[name]
        elif not_null and default is None:
            kind = declared.upper()
            value = 1 if "INT" in kind or "BOOL" in kind else "2026-12-06 00:00:00" if "DATE" in kind else "x"
        else:
            continue
        names.append(name)
        values.append(value)
    db.execute(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(values))})", values)  # noqa: S608 - table and column names are the schema's own


def test_upgrading_sqlite_keeps_the_rows_that_reference_a_rebuilt_table(tmp_path: Path) -> None:
    """Batch mode rebuilds home_session on SQLite (0008): the rows that reference it ON DELETE CASCADE survive."""
    path = tmp_path / "live.db"
    upgrade(f"sqlite:///{path}", "0007")
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA foreign_keys=ON")
        _insert_filled(db, "home_session", id="s1", login="alice", state="ACTIVE")
        _insert_filled(db, "vpn_tunnel_lease", id=1, session_id="s1", login="alice")
    upgrade(f"sqlite:///{path}")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT id FROM home_session").fetchall() == [("s1",)]
        assert db.execute("SELECT session_id FROM vpn_tunnel_lease").fetchall() == [("s1",)]


def test_0024_starts_the_idle_clock_of_live_guacamole_seats_at_the_upgrade(tmp_path: Path) -> None:
    """NULL would count idle time from started_at, and the first limits pass would end every RDP seat in use."""
    path = tmp_path / "live.db"
    upgrade(f"sqlite:///{path}", "0023")
    with sqlite3.connect(path) as db:
        _insert_filled(db, "home_session", id="s1", login="alice", state="ACTIVE")
        for lease_id, backend, state in [
            ("g-assigned", "guacamole", "ASSIGNED"),
            ("g-connected", "guacamole", "CONNECTED"),
            ("g-ended", "guacamole", "ENDED"),
            ("x-connected", "x11", "CONNECTED"),
        ]:
            _insert_filled(db, "seat_lease", id=lease_id, session_id="s1", backend=backend, state=state)
    before = datetime.now(UTC)
    upgrade(f"sqlite:///{path}")
    engine = make_engine(f"sqlite:///{path}")
    with session_scope(engine) as db:
        last_input = {lease.id: lease.last_input_at for lease in db.exec(select(SeatLease))}
    engine.dispose()
    assert last_input["g-ended"] is None
    assert last_input["x-connected"] is None
    for lease_id in ("g-assigned", "g-connected"):
        moment = last_input[lease_id]
        assert moment is not None
        assert before - timedelta(seconds=1) <= as_utc(moment) <= datetime.now(UTC)


def _insert_at(engine: Engine, table: str, **given: object) -> None:
    """A row of ``table`` as the database has it now: ``given`` values and a placeholder of the right type in every
    other NOT NULL column without a default (SQLite and PostgreSQL alike)."""
    columns = sa.Table(table, sa.MetaData(), autoload_with=engine).columns
    row = dict(given)
    for column in columns:
        generated = column.primary_key and isinstance(column.type, sa.Integer)
        if column.name in row or column.nullable or column.server_default is not None or generated:
            continue
        kind = column.type
        row[column.name] = (
            kind.enums[0]
            if isinstance(kind, sa.Enum)
            else datetime(2026, 12, 6, tzinfo=UTC)
            if isinstance(kind, sa.DateTime)
            else 1
            if isinstance(kind, sa.Integer | sa.Boolean)
            else "x"
        )
    with engine.begin() as connection:
        connection.execute(sa.insert(sa.Table(table, sa.MetaData(), autoload_with=connection)), [row])


def test_0025_binds_a_certificate_to_the_one_person_whose_sessions_signed_in_with_it(empty_db_url: str) -> None:
    """Not one any legacy session used, nor one sessions of two people used (a UPN passed on), nor a server's;
    the downgrade drops the column and the upgrade binds again."""
    upgrade(empty_db_url, "0024")
    engine = make_engine(empty_db_url)
    used_by = {
        "one-person": ["guid-a", "guid-a"],
        "two-people": ["guid-a", "guid-b"],
        "legacy-only": ["legacy:alice"],
        "one-person-and-legacy": ["legacy:bob", "guid-b"],
        "unused": [],
    }
    for serial, people in [*used_by.items(), ("server", ["guid-a"])]:
        kind = "SERVER" if serial == "server" else "AGENT"
        _insert_at(engine, "issued_certificate", serial=serial, kind=kind, fingerprint_sha256=f"fp-{serial}")
        for n, person in enumerate(people):
            _insert_at(
                engine,
                "home_session",
                id=f"{serial}-{n}",
                token_sha256=f"{serial}-{n}",
                person_id=person,
                login=person,
                state="ENDED",
                cert_fingerprint=f"fp-{serial}",
            )
    expected = {
        "one-person": "guid-a",
        "two-people": None,
        "legacy-only": None,
        "one-person-and-legacy": None,  # the legacy session may have been someone else's
        "unused": None,
        "server": None,
    }

    def bound() -> dict[str, str | None]:
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT serial, person_id FROM issued_certificate")).all()
        return {serial: person for serial, person in rows}

    upgrade(empty_db_url)
    assert bound() == expected
    command.downgrade(alembic_config(empty_db_url), "0024")
    with engine.connect() as connection:
        assert "person_id" not in {c["name"] for c in sa.inspect(connection).get_columns("issued_certificate")}
    upgrade(empty_db_url)
    assert bound() == expected
    engine.dispose()
