"""The callback leg's lifecycle: requested at login or "ready", re-dialled when it drops, released at session end.

Services write the desired state (``CallLeg.wanted``, ``agent_ready``) and apply what the platform reports; the
reconciler (``reconcile.py``) makes the platform match. The reconciler commits a dial's id before it asks the
platform to dial, so an event always finds its leg; applying an event still locks the leg's row first (an UPDATE:
a row lock on PostgreSQL, the write lock on SQLite), so it waits for a reconcile step writing the same leg.
"""

import uuid
from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from gateway.audit.service import record
from gateway.errors import Conflict
from gateway.events import nudge_after_commit
from gateway.sessions.models import HomeSession, SessionState
from gateway.voice.dialable import check_number, mask
from gateway.voice.errors import CallbackRateLimited, NoCallbackNumber
from gateway.voice.help import request_help_from_phone
from gateway.voice.models import LIVE_LEG_STATES, CallEvent, CallLeg, LegPublic, LegState
from gateway.voice.numbers import usable_number
from gateway.voice.platform import LegEvent, LegEventKind, leg_of_dial
from gateway.voice.settings import VoiceSettings
from gateway.voice.status import public

LEG_CHANGED = "voice.leg_changed"
"""Nudged after a commit that changed what the platform should do; the reconcile job wakes up."""


def note(db: Session, leg: CallLeg, kind: str, now: datetime, *, cause: int | None = None) -> None:
    db.add(
        CallEvent(
            session_id=leg.session_id,
            person_id=leg.person_id,
            login=leg.login,
            leg_id=leg.id,
            kind=kind,
            cause=cause,
            at=now,
        )
    )


def dials_last_hour(db: Session, person_id: str, now: datetime) -> int:
    query = select(func.count()).where(
        CallEvent.person_id == person_id, CallEvent.kind == "dial", col(CallEvent.at) > now - timedelta(hours=1)
    )
    return int(db.exec(query).one())


def live_leg(db: Session, session_id: str) -> CallLeg | None:
    query = select(CallLeg).where(
        CallLeg.session_id == session_id, col(CallLeg.wanted).is_(True), col(CallLeg.state).in_(LIVE_LEG_STATES)
    )
    return db.exec(query).first()


def request_callback(
    db: Session, session: HomeSession, settings: VoiceSettings, *, actor: str, now: datetime
) -> CallLeg:
    """Want a leg for this session (idempotent); refuse clearly when there is no number allowed to call."""
    if session.state is not SessionState.ACTIVE:
        raise Conflict("the session is not active; sign in again to be called back")
    existing = live_leg(db, session.id)
    if existing is not None:
        return existing
    number = usable_number(db, session.person_id, settings)
    if number is None:
        needed = "confirmed and HR-vetted" if settings.require_hr_vetted else "confirmed (and approved)"
        raise NoCallbackNumber(f"no {needed} callback number on your account; add one under Voice")
    check_number(number.e164, settings)
    if dials_last_hour(db, session.person_id, now) >= settings.callbacks_per_hour:
        raise CallbackRateLimited("too many callbacks in the last hour; wait a few minutes or call your supervisor")
    leg = CallLeg(
        id=uuid.uuid4().hex,
        session_id=session.id,
        person_id=session.person_id,
        login=session.login,
        node=session.node,
        e164=number.e164,
        state=LegState.REQUESTED,
        next_dial_at=now,
        created_at=now,
        updated_at=now,
    )
    db.add(leg)
    note(db, leg, "requested", now)
    db.flush()
    record(
        db,
        actor=actor,
        action="voice.leg.request",
        target=session.login,
        outcome="requested",
        detail={"session": session.id, "number": mask(number.e164), "person": session.person_id},
        clock=lambda: now,
    )
    nudge_after_commit(db, LEG_CHANGED, leg.id)
    return leg


def set_ready(db: Session, session: HomeSession, ready: bool, settings: VoiceSettings, *, now: datetime) -> LegPublic:
    """The agent's ready / not ready: asks for the callback if none is up, and tells the platform."""
    leg = live_leg(db, session.id)
    if leg is None and not ready:
        raise Conflict("there is no callback line to set not ready")
    if leg is None:
        leg = request_callback(db, session, settings, actor=session.login, now=now)
    leg.agent_ready, leg.updated_at = ready, now
    db.add(leg)
    note(db, leg, "ready" if ready else "not_ready", now)
    db.flush()
    nudge_after_commit(db, LEG_CHANGED, leg.id)
    return public(leg)


def release_session(db: Session, session_id: str, now: datetime) -> int:
    """No leg of this session is wanted any more (logout, session end, revocation); the reconciler hangs up."""
    legs = db.exec(select(CallLeg).where(CallLeg.session_id == session_id, col(CallLeg.wanted).is_(True))).all()
    for leg in legs:
        leg.wanted, leg.agent_ready, leg.updated_at = False, False, now
        db.add(leg)
        note(db, leg, "released", now)
    db.flush()
    if legs:
        nudge_after_commit(db, LEG_CHANGED, session_id)
    return len(legs)


def sessions_with_live_legs(db: Session, session_ids: Collection[str]) -> set[str]:
    """Of ``session_ids``, those with a leg still up or being dialled (an ending session waits for its hang-up). A
    dropped leg of a released session has no call on the platform and is not re-dialled: it is not waited for."""
    query = select(CallLeg.session_id).where(
        col(CallLeg.session_id).in_(list(session_ids)),
        col(CallLeg.state).in_([LegState.REQUESTED, LegState.RINGING, LegState.CONNECTED]),
    )
    return set(db.exec(query).all())


def lock_leg(db: Session, leg_id: str) -> CallLeg | None:
    """Wait for any open transaction on this leg to finish, then read it as committed."""
    db.execute(update(CallLeg).where(col(CallLeg.id) == leg_id).values(id=CallLeg.id))
    return db.get(CallLeg, leg_id, populate_existing=True)


def apply_leg_event(db: Session, event: LegEvent, settings: VoiceSettings, now: datetime) -> CallLeg | None:
    """Move the leg the event names; an event about an older dial of the leg is ignored."""
    leg_id = leg_of_dial(event.dial_id)
    leg = lock_leg(db, leg_id) if leg_id else None
    if leg is None or leg.channel_id != event.dial_id:
        return None
    if event.kind is LegEventKind.RINGING and leg.state is LegState.REQUESTED:
        leg.state = LegState.RINGING
    elif event.kind is LegEventKind.ANSWERED and leg.state in (LegState.REQUESTED, LegState.RINGING):
        leg.state, leg.problem = LegState.RINGING, "answered; waiting for the agent's key"
    elif event.kind is LegEventKind.KEY and leg.state is LegState.RINGING:
        leg.problem = f"answered; key {event.digit} pressed, not the acknowledgement key"
        report(db, leg, "wrong_key", now)
    elif event.kind is LegEventKind.HELP and leg.state is LegState.CONNECTED:
        request_help_from_phone(db, leg, now)
    elif event.kind is LegEventKind.CONNECTED:
        leg.state, leg.attempts, leg.connected_at, leg.problem = LegState.CONNECTED, 0, now, None
    elif event.kind is LegEventKind.ENDED:
        dial_ended(db, leg, event.cause, settings, now)
    else:
        return leg
    leg.updated_at = now
    db.add(leg)
    note(db, leg, _outcome(event, leg), now, cause=event.cause)
    db.flush()
    nudge_after_commit(db, LEG_CHANGED, leg.id)
    return leg


def _outcome(event: LegEvent, leg: CallLeg) -> str:
    """What the event meant for the leg: ringing, connected, or how the dial ended (dropped, unanswered, …)."""
    if event.kind is LegEventKind.KEY:
        return "wrong_key"
    if event.kind is not LegEventKind.ENDED:
        return event.kind.value
    return "unanswered" if leg.state is LegState.REQUESTED else leg.state.value


def dial_ended(db: Session, leg: CallLeg, cause: int | None, settings: VoiceSettings, now: datetime) -> None:
    """The platform no longer holds the dial: ended if unwanted, else a drop to re-dial or a failed dial."""
    was_connected = leg.state is LegState.CONNECTED
    leg.channel_id, leg.last_cause = None, cause
    if not leg.wanted:
        leg.state = LegState.ENDED
        return
    cause_text = f"cause {cause}" if cause is not None else "no cause reported"
    if was_connected:
        leg.state, leg.problem = LegState.DROPPED, f"the line dropped ({cause_text}); re-dialling"
        leg.next_dial_at = now + timedelta(seconds=settings.backoff(1))
        report(db, leg, "dropped", now)
    elif leg.attempts >= settings.max_dial_attempts:
        fail(db, leg, f"not answered after {leg.attempts} dials ({cause_text})", now)
    else:
        leg.state, leg.problem = LegState.REQUESTED, f"dial {leg.attempts} not answered ({cause_text})"
        leg.next_dial_at = now + timedelta(seconds=settings.backoff(leg.attempts))


def fail(db: Session, leg: CallLeg, problem: str, now: datetime) -> None:
    """Give up on the leg and say why; supervisors read it through ``current_leg``/``session_legs``."""
    leg.state, leg.wanted, leg.problem, leg.channel_id = LegState.FAILED, False, problem, None
    report(db, leg, "failed", now)


def report(db: Session, leg: CallLeg, outcome: str, now: datetime) -> None:
    """The ``voice.leg`` audit row supervisors and the wall read (the number masked)."""
    record(
        db,
        actor="system",
        action="voice.leg",
        target=leg.login,
        outcome=outcome,
        detail={
            "session": leg.session_id,
            "number": mask(leg.e164),
            "problem": leg.problem or "",
            "cause": leg.last_cause,
            "person": leg.person_id,
        },
        clock=lambda: now,
    )
