"""Make the platform match the legs in the database; idempotent, run on every nudge and on a timer.

Order of work per run: drop the wish for legs whose session is no longer active (a missed SESSION_ENDED), on a
resync judge legs whose dial the platform no longer holds (events lost while the event stream was down), hang up what is
not wanted, dial what is due, and deliver ready / not ready. Each dial is flushed before the platform is asked,
so events about it wait for this transaction (see ``service.lock_leg``).
"""

import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from gateway.clock import as_utc
from gateway.sessions.models import HomeSession, SessionState
from gateway.voice.dialable import NumberRefused, check_number
from gateway.voice.models import LIVE_LEG_STATES, CallLeg, LegState
from gateway.voice.platform import DIAL_PREFIX, LegOrder, PlatformUnavailable, VoicePlatform
from gateway.voice.service import dial_ended, dials_last_hour, fail, note
from gateway.voice.settings import VoiceSettings

log = logging.getLogger(__name__)
RATE_LIMIT_PAUSE = timedelta(minutes=5)


@dataclass
class ReconcileReport:
    dialled: list[str] = field(default_factory=list)
    hung_up: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _order(leg: CallLeg) -> LegOrder:
    assert leg.channel_id is not None
    return LegOrder(leg_id=leg.id, dial_id=leg.channel_id, e164=leg.e164, login=leg.login, session_id=leg.session_id)


def _release_orphans(db: Session, legs: list[CallLeg], now: datetime) -> None:
    for leg in legs:
        session = db.get(HomeSession, leg.session_id)
        if leg.wanted and (session is None or session.state is not SessionState.ACTIVE):
            leg.wanted, leg.agent_ready, leg.updated_at = False, False, now
            note(db, leg, "released", now)


def _dial(
    db: Session, platform: VoicePlatform, leg: CallLeg, settings: VoiceSettings, now: datetime, report: ReconcileReport
) -> None:
    try:
        check_number(leg.e164, settings)
    except NumberRefused as refused:
        fail(db, leg, f"number no longer allowed: {refused.message}", now)
        return
    if dials_last_hour(db, leg.login, now) >= settings.callbacks_per_hour:
        leg.problem, leg.next_dial_at = "callback rate limit reached; waiting", now + RATE_LIMIT_PAUSE
        return
    leg.channel_id = f"{DIAL_PREFIX}{leg.id}-{secrets.token_hex(4)}"
    leg.attempts += 1
    leg.state, leg.platform_ready, leg.next_dial_at, leg.updated_at = LegState.REQUESTED, False, None, now
    db.add(leg)
    note(db, leg, "dial", now)
    db.flush()
    try:
        platform.originate_callback(_order(leg))
    except PlatformUnavailable as error:
        leg.channel_id, leg.problem = None, error.message
        report.problems.append(error.message)
        if leg.attempts >= settings.max_dial_attempts:
            fail(db, leg, f"the voice platform refused {leg.attempts} dials: {error.message}", now)
        else:
            leg.next_dial_at = now + timedelta(seconds=settings.backoff(leg.attempts))
        return
    report.dialled.append(leg.id)


def reconcile_legs(
    db: Session, platform: VoicePlatform, now: datetime, *, settings: VoiceSettings, resync: bool = False
) -> ReconcileReport:
    """One pass; safe to run any number of times, on any node.

    ``resync`` also compares legs with the dials the platform still holds. The adapter asks for it after its event
    stream was interrupted; it is not done on every pass because a dial that just ended may not have had its event
    applied yet, and the event carries the cause that the comparison cannot know.
    """
    report = ReconcileReport()
    live_legs = col(CallLeg.state).in_(LIVE_LEG_STATES)
    # Lock first (row locks on PostgreSQL, the write lock on SQLite): events applied meanwhile wait for this pass
    # instead of being overwritten by it.
    db.execute(update(CallLeg).where(live_legs).values(id=CallLeg.id))
    legs = list(db.exec(select(CallLeg).where(live_legs).execution_options(populate_existing=True)).all())
    _release_orphans(db, legs, now)
    live = None
    if resync:
        try:
            live = platform.live_dials()
        except PlatformUnavailable as error:
            report.problems.append(error.message)
    for leg in legs:
        if leg.channel_id is not None and live is not None and leg.channel_id not in live:
            report.lost.append(leg.id)
            dial_ended(db, leg, None, settings, now)
            leg.updated_at = now
            note(db, leg, "lost", now)
        if not leg.wanted:
            if leg.channel_id is not None:
                try:
                    platform.hang_up(_order(leg))
                except PlatformUnavailable as error:
                    report.problems.append(error.message)
                    continue
                report.hung_up.append(leg.id)
            leg.state, leg.channel_id, leg.updated_at = LegState.ENDED, None, now
            note(db, leg, "ended", now)
        elif leg.channel_id is None and leg.next_dial_at is not None and as_utc(leg.next_dial_at) <= now:
            _dial(db, platform, leg, settings, now, report)
        elif leg.state is LegState.CONNECTED and leg.agent_ready != leg.platform_ready:
            try:
                platform.set_ready(_order(leg), leg.agent_ready)
            except PlatformUnavailable as error:
                report.problems.append(error.message)
                continue
            leg.platform_ready = leg.agent_ready
        db.add(leg)
    db.flush()
    for problem in report.problems:
        log.warning("voice reconcile: %s", problem)
    return report
