"""`ipam.retrying` tries a transaction again when it lost a race for a lock, told by PostgreSQL's SQLSTATE (not its
message, which is in the server's ``lc_messages`` language) or SQLite's busy result code, and only then.

The PostgreSQL errors here are real, and their English messages do not say "locked", which is what the retry once
looked for: a lock timeout and a serialization failure were not tried again (a deadlock was, by its "blocked by
process")."""

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from gateway.db import SQLITE_BUSY_TIMEOUT_MS, session_scope
from gateway.vpn import ipam
from gateway.vpn.settings import VpnSettings

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
SETTINGS = VpnSettings()
ANN = "test:ann"


def _address_of_ann(engine: Engine) -> None:
    with session_scope(engine) as db:
        ipam.assign(db, ANN, "ann", SETTINGS, NOW)


def _take_back(db: Session) -> str:
    return ipam.assign(db, ANN, "ann", SETTINGS, NOW).ipv4


def _lose_then_win(engine: Engine, lose: Callable[[Session], None]) -> tuple[str, int]:
    """`retrying` of a work whose first attempt runs ``lose`` (which ends in an error) and whose next takes ann's
    address back; the address and the number of attempts."""
    attempts: list[int] = []

    def work(db: Session) -> str:
        attempts.append(len(attempts) + 1)
        if len(attempts) == 1:
            lose(db)
        return _take_back(db)

    return ipam.retrying(engine, work), len(attempts)


def test_a_transaction_that_waited_too_long_for_a_lock_is_tried_again(engine: Engine) -> None:
    """PostgreSQL: lock_not_available (55P03, "canceling statement due to lock timeout"); SQLite: "database is
    locked". Another connection holds ann's row (the whole database on SQLite) during the first attempt."""
    _address_of_ann(engine)
    if engine.dialect.name == "postgresql":
        blocker = engine.connect()
        blocker.execute(text("SELECT id FROM vpn_address_assignment WHERE person_id = :p FOR UPDATE"), {"p": ANN})

        def lose(db: Session) -> None:
            db.execute(text("SET LOCAL lock_timeout = '50ms'"))
            _take_back(db)

        def let_go() -> None:
            blocker.rollback()
            blocker.close()
    else:
        assert engine.url.database is not None
        writer = sqlite3.connect(engine.url.database, isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")

        def lose(db: Session) -> None:
            db.execute(text("PRAGMA busy_timeout = 0"))  # the busy handler would wait 10 s for the writer
            _take_back(db)

        def let_go() -> None:
            writer.rollback()
            writer.close()

    def lose_then_let_go(db: Session) -> None:
        try:
            lose(db)
        finally:
            let_go()

    try:
        assert _lose_then_win(engine, lose_then_let_go) == ("10.77.0.2", 2)
    finally:
        if engine.dialect.name == "sqlite":
            with engine.connect() as connection:  # the pooled connection waits again, as every other does
                connection.execute(text(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}"))


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_a_serialization_failure_is_tried_again(engine: Engine) -> None:
    """PostgreSQL's 40001 ("could not serialize access due to concurrent update"): the first attempt reads ann's row
    in a REPEATABLE READ snapshot, another transaction changes it, and the attempt's own update then fails. (SQLite's
    transactions are serializable by its one write lock: its loser is busy, above.)"""
    _address_of_ann(engine)

    def lose(db: Session) -> None:
        db.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        db.execute(text("SELECT login FROM vpn_address_assignment WHERE person_id = :p"), {"p": ANN}).one()
        with engine.begin() as other:
            other.execute(text("UPDATE vpn_address_assignment SET login = 'ann2' WHERE person_id = :p"), {"p": ANN})
        _take_back(db)

    assert _lose_then_win(engine, lose) == ("10.77.0.2", 2)


def test_an_error_that_is_no_lost_race_is_not_tried_again(engine: Engine) -> None:
    """A statement timeout (PostgreSQL 57014) or a missing table (SQLite) is raised at once: trying again would fail
    the same way, twenty times."""
    attempts: list[int] = []
    failing = "SELECT pg_sleep(1)" if engine.dialect.name == "postgresql" else "SELECT * FROM no_such_table"

    def work(db: Session) -> None:
        attempts.append(1)
        if engine.dialect.name == "postgresql":
            db.execute(text("SET LOCAL statement_timeout = '10ms'"))
        db.execute(text(failing))

    with pytest.raises(OperationalError):
        ipam.retrying(engine, work)
    assert attempts == [1]
