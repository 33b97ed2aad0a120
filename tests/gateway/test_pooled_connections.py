"""A pooled PostgreSQL connection is handed out only once known to work, and pinged only when in doubt
(`gateway.db._ping_in_doubt`): one the server ended is replaced unseen, one in use moments ago costs no round trip."""

import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine, text

from gateway import db as gateway_db
from gateway.db import make_engine, session_scope
from tests.support.postgres import create_database

pytestmark = pytest.mark.postgres


@pytest.fixture
def postgres_engine(postgres_admin_url: str, postgres_template: str) -> Iterator[Engine]:
    engine = make_engine(create_database(postgres_admin_url, f"sohogw_{uuid.uuid4().hex[:12]}", postgres_template))
    yield engine
    engine.dispose()


@pytest.fixture
def pings(postgres_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Each ping the pool sends, counted (the dialect's own ping still goes to the server)."""
    sent: list[int] = []
    ping = postgres_engine.dialect.do_ping

    def counted(connection: psycopg.Connection[object]) -> bool:
        sent.append(1)
        return ping(connection)

    monkeypatch.setattr(postgres_engine.dialect, "do_ping", counted)
    return sent


def _backend(engine: Engine) -> int:
    with session_scope(engine) as db:
        return int(db.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_connection_in_use_moments_ago_is_handed_out_without_a_ping(
    postgres_engine: Engine, pings: list[int]
) -> None:
    first = _backend(postgres_engine)
    assert [_backend(postgres_engine) for _ in range(5)] == [first] * 5  # the same pooled connection each time
    assert pings == []


def test_a_connection_idle_for_long_is_pinged_first(
    postgres_engine: Engine, pings: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _backend(postgres_engine)
    monkeypatch.setattr(gateway_db, "PING_AFTER_IDLE_SECONDS", 0.05)
    time.sleep(0.1)
    assert _backend(postgres_engine) == first
    assert pings == [1]


def test_a_connection_the_server_ended_is_replaced_before_anyone_uses_it(
    postgres_engine: Engine, postgres_admin_url: str, pings: list[int]
) -> None:
    ended = _backend(postgres_engine)  # back in the pool, in use moments ago
    admin = postgres_admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as server:
        server.execute("SELECT pg_terminate_backend(%s)", (ended,))
        deadline = time.monotonic() + 10
        while server.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (ended,)).fetchone():
            assert time.monotonic() < deadline, "the server did not end the connection"
            time.sleep(0.01)
    replacement = _backend(postgres_engine)  # no error: the ended connection never reached the caller
    assert replacement != ended and pings == [1]
