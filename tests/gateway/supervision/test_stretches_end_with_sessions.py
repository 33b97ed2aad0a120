"""A work-state stretch ends with its home session: at once after the commit that ends the session (the
``supervision.stretches`` worker's nudged pass), and in the scheduled alert pass for any session no longer active."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from gateway.db import session_scope
from gateway.sessions.models import EndReason, HomeSession, SessionState
from gateway.sessions.service import end_session
from gateway.supervision.alerts import check_alerts
from gateway.supervision.models import WorkState, WorkStatus
from gateway.supervision.settings import SupervisionSettings
from gateway.supervision.state import set_work_state
from gateway.supervision.workers import StretchCloser
from tests.gateway.supervision.conftest import add_session
from tests.support.workers import running, wait_for

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


@pytest.fixture
def registered(engine: Engine) -> Iterator[None]:
    """The stretch worker, run by a runner as the app runs it."""
    with running([StretchCloser(SupervisionSettings(), lambda: T0)], engine):
        yield


def _working_agent(engine: Engine) -> str:
    with session_scope(engine) as db:
        agent = add_session(db, "agent1", created_at=T0)
        set_work_state(db, agent, WorkStatus.ON_CALL, "", source="portal", now=T0 + timedelta(minutes=1))
        return agent.id


def _stretch_end(engine: Engine) -> datetime | None:
    with session_scope(engine) as db:
        ended_at = db.exec(select(WorkState.ended_at)).one()
    return ended_at.replace(tzinfo=UTC) if ended_at else None


def test_ending_a_session_closes_its_stretch_right_after_the_commit(engine: Engine, registered: None) -> None:
    session_id = _working_agent(engine)
    with pytest.raises(RuntimeError), session_scope(engine) as db:
        end_session(db, db.get_one(HomeSession, session_id), EndReason.LOGOUT, actor="agent1", now=T0)
        raise RuntimeError("the request failed after ending the session")
    assert _stretch_end(engine) is None, "a rolled-back end closed the stretch"
    ended = T0 + timedelta(hours=2)
    with session_scope(engine) as db:
        end_session(db, db.get_one(HomeSession, session_id), EndReason.LOGOUT, actor="agent1", now=ended)
    assert wait_for(lambda: _stretch_end(engine) == ended)


def test_the_scheduled_pass_closes_stretches_of_sessions_no_longer_active(engine: Engine) -> None:
    session_id = _working_agent(engine)
    ended = T0 + timedelta(hours=3)
    with session_scope(engine) as db:
        session = db.get_one(HomeSession, session_id)
        session.state, session.ended_at = SessionState.ENDED, ended
        db.add(session)
    assert _stretch_end(engine) is None
    with session_scope(engine) as db:
        check_alerts(db, SupervisionSettings(), ended + timedelta(minutes=5))
    assert _stretch_end(engine) == ended
