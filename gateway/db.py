"""The one engine and session factory.

SQLite (WAL) under the data directory is the embedded default; PostgreSQL by URL for several nodes. Services take a
``Session`` first and only flush; the caller (a request, a job, the CLI) commits once through ``session_scope``.
The one other commit is `keep_refusal`'s; `independent_writes` is for writes no transaction needs to bind.
tests/gateway/test_transactions.py fails on a ``.commit()`` anywhere else.
"""

import select
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import Connection, Engine, bindparam, event, func
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import Session, SQLModel, create_engine

from gateway.errors import TooLong

SQLITE_BUSY_TIMEOUT_MS = 10_000
PING_AFTER_IDLE_SECONDS = 10.0
"""A pooled PostgreSQL connection idle longer than this is pinged before it is handed out (see `_ping_in_doubt`)."""
_RETURNED_AT = "sohogw.returned_at"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer; foreign keys are off by default in SQLite.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url``; creates the SQLite file's directory."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_engine(url, pool_size=10, max_overflow=20)
    event.listen(engine, "checkin", _note_return)
    event.listen(engine, "checkout", lambda connection, entry, _: _ping_in_doubt(engine, connection, entry))
    return engine


def _note_return(_connection: Any, entry: ConnectionPoolEntry) -> None:
    entry.info[_RETURNED_AT] = time.monotonic()


def _ping_in_doubt(engine: Engine, connection: Any, entry: ConnectionPoolEntry) -> None:
    """Hand out a pooled PostgreSQL connection only once it is known to work, pinging it only when in doubt.

    Pinging at every checkout (``pool_pre_ping``) cost a round trip each time, three a sign-in. A connection in use
    moments ago that has heard nothing since is taken as it is; one idle longer than ``PING_AFTER_IDLE_SECONDS``, or
    one the server has spoken on since (a server that ends a connection says so and closes it: a restart, an
    administrator's ``pg_terminate_backend``, an idle timeout), is pinged first, and one that fails is replaced
    before anyone uses it (the pool reconnects on ``DisconnectionError``)."""
    returned_at = entry.info.get(_RETURNED_AT)
    if returned_at is None:
        return  # just connected
    if time.monotonic() - returned_at < PING_AFTER_IDLE_SECONDS and not _has_something_to_read(connection.fileno()):
        return
    try:
        engine.dialect.do_ping(connection)
    except engine.dialect.loaded_dbapi.Error as error:
        raise DisconnectionError(f"a pooled connection no longer works: {error}") from error


def _has_something_to_read(descriptor: int) -> bool:
    """Whether the server sent anything (a message, or the end of the connection) on an idle connection."""
    poll = select.poll()
    poll.register(descriptor, select.POLLIN)
    return bool(poll.poll(0))


def engine_of(db: Session) -> Engine:
    """The engine `db` works on, for a unit of work beside it (every session of the gateway is bound to one)."""
    bind = db.get_bind()
    if not isinstance(bind, Engine):
        raise TypeError(f"a session bound to {type(bind).__name__}, not to an engine")
    return bind


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


@contextmanager
def independent_writes(engine: Engine) -> Iterator[Connection]:
    """A connection for writes that need no transaction to bind them (each statement is whole alone and needs no
    lock beyond its own). On PostgreSQL each statement commits by itself: no ``BEGIN`` and no ``COMMIT``, two round
    trips fewer. SQLite has no round trips to save, and each commit of its one writer is its lock taken and given
    up again, so there they share one transaction."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            yield connection
    else:
        with engine.begin() as connection:
            yield connection


def keep_refusal(db: Session) -> None:
    """Commit what a refusal wrote (its audit row, a counted attempt) before the refusal is raised.

    A refusal leaves the request by an exception, which rolls the request's transaction back: without this its audit
    row would vanish and an attempt limit would count nothing. Call it right before raising, with nothing but the
    refusal's own rows written since the last commit.
    """
    db.commit()


def keep_done(db: Session) -> None:
    """Commit a finished step of a request (a completed sign-in) before a slow next step of it (starting a seat).

    The finished step's locks would otherwise be held through the slow one: its audit row holds the chain's head (on
    SQLite, the one write lock), so every sign-in and audited action on every node would wait for a seat to start.
    The next step runs in a new transaction, and its failure leaves the first step done.
    """
    db.commit()


TAKE_TURN = sqlalchemy.select(func.pg_advisory_xact_lock(func.hashtext(bindparam("turn_name"))))
"""PostgreSQL: `serialize_on`'s statement, to run alone or to carry another statement in its ``WITH``
(``add_cte``): the other runs in full whether or not it is referenced, and a caller saves a round trip."""


def serialize_on(db: Session, name: str) -> None:
    """Make transactions that name the same thing take turns from here to their commit.

    PostgreSQL: a transaction-scoped advisory lock on the name's hash, and the statements after it see what the
    previous holder committed. SQLite: nothing to do, its one writer already takes turns (a transaction that has
    written, as every caller has, reads what was committed before it could write).
    """
    if db.get_bind().dialect.name == "postgresql":
        db.execute(TAKE_TURN, {"turn_name": name})


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def fits_column(value: str, model: type[SQLModel], field: str) -> str:
    """``value`` when ``model``'s column ``field`` holds it, else `TooLong` naming the field: PostgreSQL refuses a
    longer value, which failed the request's whole transaction (a 500 that lost what was typed), where SQLite kept it
    whole. For what a person types; the field is named as the form names it."""
    limit: int = model.__table__.c[field].type.length  # type: ignore[attr-defined]
    if len(value) > limit:
        raise TooLong(
            f"{field} is longer than the {limit} characters it can hold", key="too_long", field=field, limit=limit
        )
    return value
