"""The session sweep and a sign-in never wait for each other in a circle, on PostgreSQL: the sweep holds the audit
chain once it has audited the sessions it ended, and then prunes the throttle windows that have passed (a sign-in
takes its throttle rows only once the chain is its own, and the prune skips a row another transaction holds); it
marks every session it ends before its first audit row, a take-over holding the row of one while it waits for the
chain."""

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from gateway.audit.service import record
from gateway.db import make_engine, session_scope
from gateway.sessions import service as session_service
from gateway.sessions import throttle
from gateway.sessions.login import LoginRequest, LoginServices, login
from gateway.sessions.models import HomeSession, SessionState
from gateway.sessions.service import end_idle_and_expired, new_home_session, open_session
from tests.gateway.sessions.test_new_home_session import FIELDS
from tests.gateway.sessions.test_sign_in_sees_changes_at_once import (
    PASSWORD,
    _our_certificate,
    services,  # noqa: F401 (the fixture)
)
from tests.support.beside import race_from_the_first_append, run_beside
from tests.support.postgres import create_database

pytestmark = pytest.mark.postgres


@pytest.fixture
def engine(postgres_admin_url: str, postgres_template: str) -> Iterator[Engine]:
    """PostgreSQL alone: SQLite has one writer, so a sign-in and the sweep take turns there."""
    url = create_database(postgres_admin_url, f"sohogw_{uuid.uuid4().hex[:12]}", template=postgres_template)
    made = make_engine(url)
    yield made
    made.dispose()


def test_the_sweep_prunes_beside_a_sign_in_waiting_for_the_audit_chain(engine: Engine, services: LoginServices) -> None:  # noqa: F811
    certificate = _our_certificate(engine, services).cert
    now = datetime.now(UTC)
    failures: list[BaseException] = []

    def sign_in() -> None:
        with session_scope(engine) as db:
            login(db, services, LoginRequest("agent1", PASSWORD, "198.51.100.7", "", certificate), now)

    with Session(engine) as sweep:
        record(sweep, actor="system", action="session.end", outcome="idle", target="x")  # holds the chain's lock
        signer = run_beside(engine, sign_in, failures)
        # The sign-in's session row is written: it waits for the chain (its give-back comes after it). Its window
        # has passed by the sweep's clock (one that began ~15 minutes before: steady traffic, or an attacker's guess).
        try:
            throttle.prune(sweep, now + timedelta(minutes=16), services.limits)
            sweep.commit()
        except BaseException as error:  # noqa: BLE001
            failures.append(error)
            sweep.rollback()
        signer.join(30)
    assert not failures, [f"{type(error).__name__}: {str(error).splitlines()[0]}" for error in failures]


def test_the_sweep_ends_an_idle_session_beside_a_sign_in_taking_it_over(
    engine: Engine,
    services: LoginServices,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An agent whose session has idled out signs in again while the sweep ends idle sessions, another person's
    (older) first: the sign-in's take-over marks the idle session (its row held to the commit) and waits for the
    audit chain. The sweep held the chain from its first ending's audit row and then waited for that row: PostgreSQL
    ended one of them as a deadlock (a sign-in with the right password answered 500, or the pass failed)."""
    certificate = _our_certificate(engine, services).cert
    now = datetime.now(UTC)
    with session_scope(engine) as db:
        earlier = now - timedelta(hours=1)
        other = {"person_id": "builtin:other", "login": "other", "created_at": earlier, "last_seen_at": earlier}
        open_session(db, new_home_session(**{**FIELDS, **other, "expires_at": now + timedelta(days=7)}))
        login(db, services, LoginRequest("agent1", PASSWORD, "198.51.100.7", "", certificate), now)

    def sign_in() -> None:
        with session_scope(engine) as db:
            login(db, services, LoginRequest("agent1", PASSWORD, "198.51.100.7", "", certificate), now)

    def sweep() -> None:
        with session_scope(engine) as db:
            end_idle_and_expired(db, now + timedelta(days=2))  # both sessions idle by then

    # The sign-in waits: for the sweep's chain, or for the row the sweep marked.
    failures = race_from_the_first_append(engine, monkeypatch, [(session_service, "record_all")], sweep, sign_in)
    assert not failures, [f"{type(error).__name__}: {str(error).splitlines()[0]}" for error in failures]
    with Session(engine) as db:
        live = db.exec(select(HomeSession).where(HomeSession.state == SessionState.ACTIVE)).all()
    assert [session.login for session in live] == ["agent1"]  # the new one; both idle ones ended
