"""A session that is ended is *ending* while its children close, then *ended*: never live in between, and never
ending for ever. The children here are real tunnel leases retired by the VPN's own bookkeeping."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from gateway.audit.models import AuditEvent
from gateway.db import session_scope
from gateway.sessions.endings import ENDING_GRACE, LiveChildren, finish_endings
from gateway.sessions.models import EndReason, HomeSession, SessionState
from gateway.sessions.service import (
    end_replaced_sessions,
    end_session,
    live_sessions,
    rotate_token,
    session_for_token,
)
from gateway.sessions.workers import SessionEndings
from gateway.supervision.view import seat_view
from gateway.vpn.leases import LEASE_RETIRED, retire_ended_leases, sessions_with_live_tunnels
from gateway.vpn.models import LeaseState, TunnelLease
from gateway.vpn.reconcile import desired_peers
from tests.gateway.supervision.conftest import add_session
from tests.support.workers import running, wait_for

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
TUNNELS = LiveChildren("tunnel", LEASE_RETIRED, sessions_with_live_tunnels)


class SteppedClock:
    """Stands still until the test moves it (the grace is measured against it)."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, by: timedelta) -> None:
        self.at += by


def _agent_with_tunnel(engine: Engine, login: str = "agent1") -> tuple[str, str]:
    """A live agent session holding a desired tunnel lease: its id and its cookie's token."""
    with session_scope(engine) as db:
        session = add_session(db, login, created_at=T0)
        token = rotate_token(db, session)
        session.wireguard_key = f"key-of-{login}"
        db.add(session)
        db.add(
            TunnelLease(
                session_id=session.id,
                person_id=session.person_id,
                login=login,
                public_key=f"key-of-{login}",
                ipv4="10.77.0.2",
                ipv6="fd77::2",
                scope="[]",
                state=LeaseState.DESIRED,
                created_at=T0,
            )
        )
        return session.id, token


def _state(engine: Engine, session_id: str) -> SessionState:
    with session_scope(engine) as db:
        return db.get_one(HomeSession, session_id).state


def _end(engine: Engine, session_id: str, now: datetime) -> None:
    with session_scope(engine) as db:
        end_session(db, db.get_one(HomeSession, session_id), EndReason.ADMIN, actor="admin1", now=now)


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock(T0)


@pytest.fixture
def endings(engine: Engine, clock: SteppedClock) -> Iterator[None]:
    with running([SessionEndings([TUNNELS], clock)], engine, clock):
        yield


def test_an_ended_session_is_ending_until_its_tunnel_lease_is_retired_then_ended(
    engine: Engine, clock: SteppedClock, endings: None
) -> None:
    session_id, _ = _agent_with_tunnel(engine)
    _end(engine, session_id, T0)
    assert _state(engine, session_id) is SessionState.ENDING
    with session_scope(engine) as db:
        assert finish_endings(db, T0, [TUNNELS]) == 0  # the tunnel is live: the pass leaves it ending
    with session_scope(engine) as db:  # the VPN's bookkeeping retires the lease; its nudge wakes the worker
        assert retire_ended_leases(db, T0, [session_id]) == 1
    assert wait_for(lambda: _state(engine, session_id) is SessionState.ENDED)
    with session_scope(engine) as db:
        stuck = db.exec(select(AuditEvent).where(AuditEvent.outcome == "children_stuck")).all()
        ends = db.exec(select(AuditEvent).where(AuditEvent.action == "session.end")).all()
    assert stuck == [] and [e.outcome for e in ends] == [EndReason.ADMIN.value]  # audited once, when it was ended


def test_an_ending_session_is_live_nowhere(engine: Engine) -> None:
    (ending, ending_token), (bystander, bystander_token) = _agent_with_tunnel(engine), _agent_with_tunnel(engine, "a2")
    _end(engine, ending, T0)
    with session_scope(engine) as db:
        assert [s.id for s in live_sessions(db)] == [bystander]  # sign-in's one-live-session rule
        assert [p.session_id for p in desired_peers(db, T0).peers.values()] == [bystander]  # the VPN's peers
        assert session_for_token(db, ending_token, T0) is None  # its cookie opens nothing
        assert session_for_token(db, bystander_token, T0) is not None
        rows = {row.session_id: row.state for row in seat_view(db, T0)}
        assert db.get_one(HomeSession, ending).state is SessionState.ENDING
    assert rows == {ending: "ending", bystander: "offline"}  # the wall shows it, as ending


def test_a_child_that_never_closes_ends_the_session_after_the_grace_and_is_audited(
    engine: Engine, clock: SteppedClock
) -> None:
    session_id, _ = _agent_with_tunnel(engine)
    _end(engine, session_id, T0)
    worker = SessionEndings([TUNNELS], clock)
    with running([worker], engine, clock) as runner:
        clock.advance(ENDING_GRACE - timedelta(seconds=1))
        runner.nudge(LEASE_RETIRED, session_id)
        assert wait_for(lambda: runner.status(worker.name).last_success_at == clock())
        assert _state(engine, session_id) is SessionState.ENDING  # the positive control for what follows
        clock.advance(timedelta(seconds=1))
        runner.nudge(LEASE_RETIRED, session_id)
        assert wait_for(lambda: _state(engine, session_id) is SessionState.ENDED)
    with session_scope(engine) as db:
        stuck = db.exec(select(AuditEvent).where(AuditEvent.outcome == "children_stuck")).one()
    assert '"live": ["tunnel"]' in stuck.detail and session_id in stuck.detail


def _session_end_rows(engine: Engine) -> list[AuditEvent]:
    with session_scope(engine) as db:
        return list(db.exec(select(AuditEvent).where(AuditEvent.action == "session.end")).all())


def test_a_session_another_transaction_ended_since_it_was_read_is_not_ended_twice(engine: Engine) -> None:
    session_id, _ = _agent_with_tunnel(engine)
    with session_scope(engine) as db:
        stale = db.get_one(HomeSession, session_id)  # read as live, then ended elsewhere and committed
        _end(engine, session_id, T0 + timedelta(minutes=1))
        assert stale.state is SessionState.ACTIVE  # the positive control: this object did not see it
        end_session(db, stale, EndReason.IDLE, actor="system", now=T0 + timedelta(minutes=2))
        assert (stale.state, stale.end_reason, stale.ended_by) == (SessionState.ENDING, EndReason.ADMIN, "admin1")
    ended = _session_end_rows(engine)
    assert [(row.outcome, row.actor) for row in ended] == [(EndReason.ADMIN.value, "admin1")]
    with session_scope(engine) as db:
        assert db.get_one(HomeSession, session_id).end_reason is EndReason.ADMIN


def test_a_take_over_ends_the_persons_other_live_sessions_and_the_objects_held_say_so(engine: Engine) -> None:
    with session_scope(engine) as db:
        earlier = add_session(db, "agent1", created_at=T0)
        older = add_session(db, "agent1", created_at=T0 - timedelta(hours=1))
        colleague = add_session(db, "agent2", created_at=T0)
        newest = add_session(db, "agent1", created_at=T0 + timedelta(minutes=5))
        end_replaced_sessions(db, newest, T0 + timedelta(minutes=5))
        # The objects this unit of work holds follow their rows, with nothing left to flush over them.
        ending, live = SessionState.ENDING, SessionState.ACTIVE
        assert [s.state for s in (older, earlier, colleague, newest)] == [ending, ending, live, live]
        assert older.end_reason is EndReason.REPLACED and older.ended_by == "agent1" and not db.dirty
    with session_scope(engine) as db:
        assert [s.id for s in live_sessions(db)] == [colleague.id, newest.id]
    ended = _session_end_rows(engine)  # oldest first, each with its own session and the new one's address
    assert [(row.target, json.loads(row.detail)["session"], row.source) for row in ended] == [
        ("agent1", older.id, newest.source_ip),
        ("agent1", earlier.id, newest.source_ip),
    ]
