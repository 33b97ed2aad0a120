"""A survivor declaring a node dead and an agent of that node signing in again on a survivor at that moment never
wait for each other in a circle, on PostgreSQL: the sign-in's take-over marks the agent's old session (its row held
to the commit) and waits for the audit chain; the survivor marks every session the dead nodes owned before its first
audit row (`sessions.service.end_sessions`, one append), so it never holds the chain while waiting for that row."""

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from gateway.audit.service import verify_chain
from gateway.db import make_engine, session_scope
from gateway.nodes import service
from gateway.seats.models import SeatLease, SeatLeaseState
from gateway.sessions import service as session_service
from gateway.sessions.login import LoginRequest, LoginServices, login
from gateway.sessions.models import EndReason, HomeSession, SessionState
from gateway.sessions.service import new_home_session, open_session
from tests.gateway.sessions.test_new_home_session import FIELDS
from tests.gateway.sessions.test_sign_in_sees_changes_at_once import (
    PASSWORD,
    _our_certificate,
    services,  # noqa: F401 (the fixture)
)
from tests.support.beside import race_from_the_first_append
from tests.support.postgres import create_database

pytestmark = pytest.mark.postgres
DEAD_AFTER = timedelta(seconds=15)


@pytest.fixture
def engine(postgres_admin_url: str, postgres_template: str) -> Iterator[Engine]:
    """PostgreSQL alone: SQLite refuses a second node, and has one writer (the two take turns there)."""
    url = create_database(postgres_admin_url, f"sohogw_{uuid.uuid4().hex[:12]}", template=postgres_template)
    made = make_engine(url)
    yield made
    made.dispose()


def _seat_on(db: Session, session: HomeSession, node: str, now: datetime) -> None:
    db.add(
        SeatLease(
            id=uuid.uuid4().hex,
            session_id=session.id,
            person_id=session.person_id,
            login=session.login,
            app_id="crm",
            backend="x11",
            node=node,
            seat_id=f"seat-{session.login}",
            state=SeatLeaseState.CONNECTED,
            idle_timeout_seconds=900,
            max_session_seconds=28800,
            started_at=now,
            last_activity_at=now,
        )
    )
    db.flush()


@pytest.mark.parametrize("agents_node", ["n1", "n3"], ids=["one dead node", "two dead nodes"])
def test_a_dead_nodes_sessions_end_beside_its_agent_signing_in_on_a_survivor(
    agents_node: str,
    engine: Engine,
    services: LoginServices,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """n1 went silent with two agents' seats on it, another person's (older) session and agent1's; agent1 signs in
    again (on n2) while n2 declares n1 dead. The survivor held the chain from the first ending's audit row and then
    waited for agent1's old session row, which the take-over had marked while it waited for the chain: PostgreSQL
    ended one of them as a deadlock (the sign-in with the right password answered 500, or the declaration failed).
    With two dead nodes, agent1's seat on the second (n3): every dead node's sessions are marked before the first
    audit row, not node by node."""
    certificate = _our_certificate(engine, services).cert
    now = datetime.now(UTC)
    with session_scope(engine) as db:
        for node in sorted({"n1", agents_node}):
            service.join(db, node, now - timedelta(minutes=10), dead_after=DEAD_AFTER, shared_database=True)
        earlier = now - timedelta(hours=1)
        other = {"person_id": "builtin:other", "login": "other", "created_at": earlier, "last_seen_at": earlier}
        first = new_home_session(**{**FIELDS, **other, "id": uuid.uuid4().hex, "expires_at": now + timedelta(days=1)})
        open_session(db, first)
        _seat_on(db, first, "n1", earlier)
        login(db, services, LoginRequest("agent1", PASSWORD, "198.51.100.7", "", certificate), now)
        old = db.exec(select(HomeSession).where(HomeSession.login == "agent1")).one()
        _seat_on(db, old, agents_node, now)
        old_id = old.id
    declared: list[str] = []

    def sign_in() -> None:
        with session_scope(engine) as db:
            login(db, services, LoginRequest("agent1", PASSWORD, "198.51.100.7", "", certificate), now)

    def declare() -> None:
        with session_scope(engine) as db:
            declared.extend(service.declare_dead_nodes(db, "n2", now, DEAD_AFTER))

    # The sign-in waits: for the survivor's chain, or for the row the survivor marked.
    failures = race_from_the_first_append(engine, monkeypatch, [(session_service, "record_all")], declare, sign_in)
    assert not failures, [f"{type(error).__name__}: {str(error).splitlines()[0]}" for error in failures]
    assert sorted(declared) == sorted({"n1", agents_node})
    with Session(engine) as db:
        sessions = {session.id: session for session in db.exec(select(HomeSession)).all()}
        assert verify_chain(db).first_bad_seq is None
    assert sessions[first.id].end_reason is EndReason.NODE_LOST
    assert sessions[old_id].state is not SessionState.ACTIVE  # ended by the node's death or by the take-over
    live = [session.login for session in sessions.values() if session.state is SessionState.ACTIVE]
    assert live == ["agent1"]  # the new one
