"""An agent asks for help: a flag on the supervisors' wall until a supervisor answers it or the session ends.

The agent's page ("Need help") and the phone (a DTMF code the voice domain recognises: it calls `request_help` with
``source="phone"``) raise the same flag. It carries the customer call in progress when the voice domain knows one
(the caller masked), so the supervisor can watch — and listen, once listening exists — in one click. Asking twice
keeps the one open request. Every request and answer is audited; reports count answered and unanswered requests.
"""

from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session, col, select

from gateway.audit.service import record
from gateway.clock import as_utc
from gateway.errors import NotFound
from gateway.events import nudge_after_commit
from gateway.sessions.models import HomeSession, SessionState
from gateway.sessions.service import get_session
from gateway.supervision.errors import NoLiveAgent
from gateway.supervision.models import HelpRequest
from gateway.supervision.state import WORK_STATE_CHANGED
from gateway.voice.calls import current_call_state
from gateway.voice.dialable import mask
from gateway.voice.platform import CustomerCallKind

SOURCES = ("portal", "phone")


def open_requests(db: Session, session_ids: Sequence[str]) -> dict[str, HelpRequest]:
    """The open help request of each of these sessions that has one."""
    if not session_ids:
        return {}
    query = select(HelpRequest).where(
        col(HelpRequest.session_id).in_(list(session_ids)), col(HelpRequest.closed_at).is_(None)
    )
    return {request.session_id: request for request in db.exec(query).all()}


def _call_in_progress(db: Session, session_id: str) -> str | None:
    state = current_call_state(db, session_id)
    if state is None or state.kind is not CustomerCallKind.ANSWERED:
        return None
    return f"caller {mask(state.caller)}" if state.caller else "caller unknown"


def request_help(db: Session, session_id: str, source: str, now: datetime) -> HelpRequest:
    """Raise (or keep) the agent's help flag for this live agent session; `NoLiveAgent` otherwise.

    For other domains too: the voice domain calls it when the agent keys the help code on the phone.
    """
    session = get_session(db, session_id)
    if session is None or session.state is not SessionState.ACTIVE or "agent" not in session.role_set:
        raise NoLiveAgent("help can only be asked for from a live agent session")
    if source not in SOURCES:
        raise ValueError(f"source is one of {', '.join(SOURCES)}")
    existing = open_requests(db, [session_id]).get(session_id)
    if existing is not None:
        return existing
    request = HelpRequest(
        session_id=session.id,
        login=session.login,
        source=source,
        call=_call_in_progress(db, session.id),
        requested_at=now,
    )
    db.add(request)
    db.flush()
    record(
        db,
        actor=session.login,
        action="supervision.help.request",
        outcome="requested",
        target=session.login,
        detail={"help": request.id, "session": session.id, "source": source, "call": request.call},
        clock=lambda: now,
    )
    nudge_after_commit(db, WORK_STATE_CHANGED, session.id)
    return request


def answer_help(db: Session, agent: HomeSession, supervisor: str, *, now: datetime, source: str) -> HelpRequest:
    """A supervisor takes the agent's open request (the agent must be in their scope: see `scope.ScopedAgent`)."""
    request = open_requests(db, [agent.id]).get(agent.id)
    if request is None:
        raise NotFound(f"{agent.login} has no open help request")
    asked = as_utc(request.requested_at)
    request.answered_at = request.closed_at = now
    request.answered_by = supervisor
    db.add(request)
    db.flush()
    record(
        db,
        actor=supervisor,
        source=source,
        action="supervision.help.answer",
        outcome="answered",
        target=agent.login,
        detail={"help": request.id, "session": agent.id, "waited_seconds": round((now - asked).total_seconds())},
        clock=lambda: now,
    )
    nudge_after_commit(db, WORK_STATE_CHANGED, agent.id)
    return request


def close_unanswered(db: Session, now: datetime, session_ids: Sequence[str] | None = None) -> int:
    """Close the open requests of sessions no longer active (or of ``session_ids``): unanswered, audited."""
    query = select(HelpRequest).where(col(HelpRequest.closed_at).is_(None))
    if session_ids is not None:
        query = query.where(col(HelpRequest.session_id).in_(list(session_ids)))
    closed = 0
    for request in db.exec(query).all():
        session = get_session(db, request.session_id)
        if session is not None and session.state is SessionState.ACTIVE:
            continue
        request.closed_at = now
        db.add(request)
        db.flush()
        record(
            db,
            actor="system",
            action="supervision.help.close",
            outcome="unanswered",
            target=request.login,
            detail={"help": request.id, "session": request.session_id},
            clock=lambda: now,
        )
        closed += 1
    return closed
