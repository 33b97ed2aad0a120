"""The two short transactions of a reconcile pass: decide and write what the platform will be asked (the intent),
then record what came of asking. The platform itself is called between them, with no transaction open.

Writing the intent first is what keeps events and crashes safe. A dial's id (``sohogw-<leg>-<nonce>``) is chosen
and committed before the platform is asked, so an event about the dial, which can only follow the request, always
finds its leg; a crash after the commit leaves a leg with a dial id the platform may never have seen, which a
resync judges lost once ``DIAL_GRACE`` has passed and re-dials. Recording an outcome re-reads the leg under its
lock and does nothing when the leg has moved to another dial (an event or another pass came first).
"""

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import update
from sqlmodel import Session, col, select

from gateway.clock import as_utc
from gateway.sessions.models import HomeSession, SessionState
from gateway.voice.acknowledgement import acknowledgement_overdue, not_acknowledged
from gateway.voice.dialable import check_number
from gateway.voice.errors import NumberRefused, PlatformUnavailable
from gateway.voice.models import LIVE_LEG_STATES, CallEvent, CallLeg, LegState
from gateway.voice.platform import DIAL_PREFIX, LegOrder
from gateway.voice.service import dial_ended, dials_last_hour, fail, lock_leg, note
from gateway.voice.settings import VoiceSettings

RATE_LIMIT_PAUSE = timedelta(minutes=5)
DIAL_GRACE = timedelta(seconds=30)
"""How long a requested dial whose outcome was never recorded is left alone by a resync (longer than any adapter's
request timeout): until then it may be a dial another pass or node is making right now."""


class StepKind(StrEnum):
    DIAL = "dial"
    HANG_UP = "hang_up"
    READY = "ready"


@dataclass(frozen=True, slots=True)
class Step:
    """One request to the platform, decided and written in the planning transaction."""

    kind: StepKind
    order: LegOrder
    ready: bool = False


@dataclass
class ReconcileReport:
    dialled: list[str] = field(default_factory=list)
    hung_up: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _order(leg: CallLeg) -> LegOrder:
    assert leg.channel_id is not None
    return LegOrder(leg_id=leg.id, dial_id=leg.channel_id, e164=leg.e164, login=leg.login, session_id=leg.session_id)


def judgeable_dials(db: Session, now: datetime) -> set[str]:
    """Dial ids a resync may judge by the platform's list of channels, read before that list is asked for.

    A dial the platform acknowledged (an event moved it, or its request was recorded as done) is judgeable; so is
    one requested more than ``DIAL_GRACE`` ago (its pass crashed). A dial requested just now is not: the platform
    may not hold it yet only because the request is still under way.
    """
    legs = db.exec(
        select(CallLeg).where(col(CallLeg.state).in_(LIVE_LEG_STATES), col(CallLeg.channel_id).is_not(None))
    ).all()
    return {leg.channel_id for leg in legs if leg.channel_id is not None and _dial_settled(db, leg, now)}


def _dial_settled(db: Session, leg: CallLeg, now: datetime) -> bool:
    if leg.state is not LegState.REQUESTED:
        return True
    latest = db.exec(
        select(CallEvent)
        .where(CallEvent.leg_id == leg.id, col(CallEvent.kind).in_(("dial", "dialled")))
        .order_by(col(CallEvent.id).desc())
    ).first()
    return latest is None or latest.kind == "dialled" or as_utc(latest.at) <= now - DIAL_GRACE


def plan(
    db: Session,
    now: datetime,
    settings: VoiceSettings,
    report: ReconcileReport,
    *,
    live: set[str] | None = None,
    judgeable: frozenset[str] | set[str] = frozenset(),
) -> list[Step]:
    """Decide this pass's requests and write their intent (transaction (a)); the caller commits before acting.

    Order per leg: drop the wish of a leg whose session is no longer active, judge a dial the platform no longer
    holds (``live``, on a resync), then hang up what is not wanted, dial what is due, deliver ready / not ready.
    """
    live_legs = col(CallLeg.state).in_(LIVE_LEG_STATES)
    # Lock first (row locks on PostgreSQL, the write lock on SQLite) so events applied meanwhile wait for this short
    # transaction instead of being overwritten by it.
    db.execute(update(CallLeg).where(live_legs).values(id=CallLeg.id))
    legs = list(db.exec(select(CallLeg).where(live_legs).execution_options(populate_existing=True)).all())
    steps: list[Step] = []
    for leg in legs:
        session = db.get(HomeSession, leg.session_id)
        if leg.wanted and (session is None or session.state is not SessionState.ACTIVE):
            leg.wanted, leg.agent_ready, leg.updated_at = False, False, now
            note(db, leg, "released", now)
        if live is not None and leg.channel_id in judgeable and leg.channel_id not in live:
            report.lost.append(leg.id)
            dial_ended(db, leg, None, settings, now)
            leg.updated_at = now
            note(db, leg, "lost", now)
        if leg.wanted and acknowledgement_overdue(db, leg, settings, now):
            # Hang up the unacknowledged dial; the leg has already moved on, so its outcome is not recorded.
            steps.append(Step(StepKind.HANG_UP, _order(leg)))
            not_acknowledged(db, leg, settings, now)
            leg.updated_at = now
            note(db, leg, "not_acknowledged", now)
        elif not leg.wanted and leg.channel_id is not None:
            steps.append(Step(StepKind.HANG_UP, _order(leg)))
        elif not leg.wanted:
            leg.state, leg.updated_at = LegState.ENDED, now
            note(db, leg, "ended", now)
        elif leg.channel_id is None and leg.next_dial_at is not None and as_utc(leg.next_dial_at) <= now:
            if _want_dial(db, leg, settings, now):
                steps.append(Step(StepKind.DIAL, _order(leg)))
        elif leg.state is LegState.CONNECTED and leg.agent_ready != leg.platform_ready:
            steps.append(Step(StepKind.READY, _order(leg), leg.agent_ready))
        db.add(leg)
    db.flush()
    return steps


def _want_dial(db: Session, leg: CallLeg, settings: VoiceSettings, now: datetime) -> bool:
    """Write a dial's intent (its id, the attempt, the ``dial`` event); False when policy or the rate says wait."""
    try:
        check_number(leg.e164, settings)
    except NumberRefused as refused:
        fail(db, leg, f"number no longer allowed: {refused.message}", now)
        return False
    if dials_last_hour(db, leg.person_id, now) >= settings.callbacks_per_hour:
        leg.problem, leg.next_dial_at = "callback rate limit reached; waiting", now + RATE_LIMIT_PAUSE
        return False
    # The nonce tells this dial's events from those of the leg's earlier dials.
    leg.channel_id = f"{DIAL_PREFIX}{leg.id}-{secrets.token_hex(4)}"
    leg.attempts += 1
    leg.state, leg.platform_ready, leg.next_dial_at, leg.updated_at = LegState.REQUESTED, False, None, now
    note(db, leg, "dial", now)
    return True


def record(
    db: Session,
    step: Step,
    refused: PlatformUnavailable | None,
    settings: VoiceSettings,
    now: datetime,
    report: ReconcileReport,
) -> None:
    """Record what the platform answered (transaction (c)); nothing when the leg has moved on to another dial."""
    if refused is not None:
        report.problems.append(refused.message)
    leg = lock_leg(db, step.order.leg_id)
    if leg is None or leg.channel_id != step.order.dial_id:
        return
    if step.kind is StepKind.DIAL and refused is None:
        note(db, leg, "dialled", now)
        report.dialled.append(leg.id)
    elif step.kind is StepKind.DIAL:
        assert refused is not None
        leg.channel_id, leg.problem = None, refused.message
        if leg.attempts >= settings.max_dial_attempts:
            fail(db, leg, f"the voice platform refused {leg.attempts} dials: {refused.message}", now)
        else:
            leg.next_dial_at = now + timedelta(seconds=settings.backoff(leg.attempts))
    elif refused is not None:
        return  # a hang-up or ready that failed is planned again by the next pass
    elif step.kind is StepKind.HANG_UP:
        leg.state, leg.channel_id = LegState.ENDED, None
        note(db, leg, "ended", now)
        report.hung_up.append(leg.id)
    else:
        leg.platform_ready = step.ready
    leg.updated_at = now
    db.add(leg)
    db.flush()
