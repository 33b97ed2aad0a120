"""Set and read agents' work states. Every change closes the open stretch and opens a new one, so history is kept.

The agent sets their state on the portal; the contact-center platform may set it over the signed API
(``platform.py``). When a home session ends, its open stretch is closed by the session-ended listener.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select as sql_select
from sqlmodel import Session, col, select

from gateway.clock import as_utc
from gateway.errors import Conflict
from gateway.events import nudge_after_commit
from gateway.sessions.models import HomeSession, SessionState
from gateway.supervision.errors import UnknownWorkState
from gateway.supervision.models import WorkState, WorkStatus

WORK_STATE_CHANGED = "supervision.work_state"
BREAK_REASONS = ("lunch", "rest", "training", "meeting", "technical", "other")
AGENT_STATES = (WorkStatus.READY, WorkStatus.WRAP_UP, WorkStatus.BREAK, WorkStatus.OFFLINE)
"""What an agent may set on the portal: "on call" comes from the phone platform, which knows when a call is up."""


@dataclass
class StateTimes:
    """Where a session stands now and how long it spent in each state before this stretch (seconds)."""

    status: WorkStatus = WorkStatus.OFFLINE
    reason: str = ""
    since: datetime | None = None
    earlier: dict[str, float] = field(default_factory=dict)


def parse_status(status: str, reason: str, *, by_agent: bool = False) -> tuple[WorkStatus, str]:
    """The state and reason as given by a form (``by_agent``: only ``AGENT_STATES``) or the platform; a break
    needs one of the known reasons."""
    try:
        parsed = WorkStatus(status)
    except ValueError:
        raise UnknownWorkState(
            f"unknown work state {status!r}; use one of {', '.join(WorkStatus)}", key="work_state_unknown"
        ) from None
    if by_agent and parsed not in AGENT_STATES:
        raise UnknownWorkState(f"{parsed.value} is set by the phone platform, not by hand", key="work_state_on_call")
    if parsed is not WorkStatus.BREAK:
        return parsed, ""
    if reason not in BREAK_REASONS:
        raise UnknownWorkState(
            f"a break needs a reason: one of {', '.join(BREAK_REASONS)}", key="work_state_break_reason"
        )
    return parsed, reason


def current_state(db: Session, session_id: str) -> WorkState | None:
    query = select(WorkState).where(WorkState.session_id == session_id, col(WorkState.ended_at).is_(None))
    return db.exec(query.order_by(col(WorkState.id).desc())).first()


def set_work_state(
    db: Session, session: HomeSession, status: WorkStatus, reason: str, *, source: str, now: datetime
) -> WorkState:
    """Close the open stretch and open one for ``status``; the same state again changes nothing."""
    if session.state is not SessionState.ACTIVE:
        raise Conflict(f"the session of {session.login} has ended; sign in again to set a work state")
    open_row = current_state(db, session.id)
    if open_row is not None and open_row.status is status and open_row.reason == reason:
        return open_row
    if open_row is not None:
        open_row.ended_at = now
        db.add(open_row)
    row = WorkState(
        session_id=session.id, login=session.login, status=status, reason=reason, source=source, started_at=now
    )
    db.add(row)
    db.flush()
    nudge_after_commit(db, WORK_STATE_CHANGED, session.id)
    return row


def close_ended_stretches(db: Session, now: datetime, session_ids: Iterable[str] | None = None) -> int:
    """Open stretches of sessions that are no longer active end when their session ended (``now`` if it has no end
    time); all such sessions, or only ``session_ids``. Idempotent; returns how many stretches it closed."""
    query = (
        select(WorkState, HomeSession.ended_at)
        .join(HomeSession, col(HomeSession.id) == col(WorkState.session_id))
        .where(col(WorkState.ended_at).is_(None), HomeSession.state != SessionState.ACTIVE)
    )
    if session_ids is not None:
        query = query.where(col(WorkState.session_id).in_(list(session_ids)))
    rows = db.exec(query).all()
    for stretch, ended_at in rows:
        stretch.ended_at = max(as_utc(stretch.started_at), as_utc(ended_at) if ended_at else now)
        db.add(stretch)
        nudge_after_commit(db, WORK_STATE_CHANGED, stretch.session_id)
    db.flush()
    return len(rows)


def state_times(db: Session, session_ids: Iterable[str]) -> dict[str, StateTimes]:
    """Current state and earlier time per state of each session, from one query over their stretches."""
    ids = list(session_ids)
    times: dict[str, StateTimes] = defaultdict(StateTimes)
    if not ids:
        return times
    columns = (WorkState.session_id, WorkState.status, WorkState.reason, WorkState.started_at, WorkState.ended_at)
    rows = db.execute(
        sql_select(*[col(column) for column in columns])
        .where(col(WorkState.session_id).in_(ids))
        .order_by(col(WorkState.id))
    ).all()
    for session_id, status, reason, started_at, ended_at in rows:
        entry = times[session_id]
        if ended_at is None:
            entry.status, entry.reason, entry.since = WorkStatus(status), reason, as_utc(started_at)
        else:
            spent = (as_utc(ended_at) - as_utc(started_at)).total_seconds()
            entry.earlier[status] = entry.earlier.get(status, 0.0) + spent
    return times
