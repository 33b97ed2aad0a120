"""View-only screen monitoring: a supervisor watches an agent's seat; every watch is audited at start and end.

Whether the agent is told follows the agent's effective policy (``notify_agent_when_watched``); a group whose
policy forbids viewing (``view_only_supervision`` false) cannot be watched at all. The pixels come from the seats
domain through ``sources.screen_url``, which must hand out a view-only credential.
"""

from datetime import datetime

from sqlmodel import Session, col, select

from gateway.audit.service import record
from gateway.errors import Forbidden, NotFound
from gateway.events import nudge_after_commit
from gateway.policies.service import current_policy
from gateway.sessions.models import HomeSession, SessionState
from gateway.sessions.service import get_session, policy_groups
from gateway.supervision.models import ScreenWatch
from gateway.supervision.sources import screen_url
from policy import evaluate

WATCH_ENDED = "supervision.watch.ended"
"""Nudged after the commit of a watch's end (payload: its id): a Guacamole join of it closes at once."""


def start_watch(
    db: Session, supervisor: HomeSession, session_id: str, *, now: datetime, source: str
) -> tuple[ScreenWatch, str]:
    """Open a watch of the agent's live session; returns it and the URL of the view-only stream."""
    agent = get_session(db, session_id)
    if agent is None or agent.state is not SessionState.ACTIVE or "agent" not in agent.role_set:
        raise NotFound("that agent is no longer logged in")
    policy = evaluate(current_policy(db), policy_groups(agent), now)
    if not policy.view_only_supervision:
        record(
            db,
            actor=supervisor.login,
            source=source,
            action="supervision.watch.start",
            outcome="refused_by_policy",
            target=agent.login,
            detail={"session": agent.id, "why": policy.explain("view_only_supervision")},
        )
        raise Forbidden(f"policy does not allow watching {agent.login}'s screen")
    url = screen_url(db, agent, supervisor.login)
    watch = ScreenWatch(
        supervisor=supervisor.login,
        session_id=agent.id,
        login=agent.login,
        node=agent.node,
        agent_told=policy.notify_agent_when_watched,
        started_at=now,
    )
    db.add(watch)
    db.flush()
    record(
        db,
        actor=supervisor.login,
        source=source,
        action="supervision.watch.start",
        outcome="started",
        target=agent.login,
        detail={"watch": watch.id, "session": agent.id, "agent_told": watch.agent_told},
    )
    return watch, url


def end_watch(db: Session, watch_id: int, supervisor: HomeSession, *, now: datetime, source: str) -> ScreenWatch:
    watch = db.get(ScreenWatch, watch_id)
    if watch is None or watch.supervisor != supervisor.login:
        raise NotFound(f"you have no watch {watch_id}")
    if watch.ended_at is None:
        watch.ended_at = now
        db.add(watch)
        db.flush()
        record(
            db,
            actor=supervisor.login,
            source=source,
            action="supervision.watch.end",
            outcome="ended",
            target=watch.login,
            detail={"watch": watch.id, "session": watch.session_id},
        )
        nudge_after_commit(db, WATCH_ENDED, watch.id)
    return watch


def watchers_told(db: Session, session_id: str) -> list[str]:
    """Supervisors watching this session whom the agent is told about."""
    query = select(ScreenWatch.supervisor).where(
        ScreenWatch.session_id == session_id, col(ScreenWatch.ended_at).is_(None), col(ScreenWatch.agent_told)
    )
    return sorted(set(db.exec(query).all()))
