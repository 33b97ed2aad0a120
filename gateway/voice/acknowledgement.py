"""The line really is the agent's: an answered callback counts only once the agent pressed the acknowledgement key.

A voicemail box or an answering machine answers a call like a person does; Asterisk's agent pool asks for a DTMF
acknowledgement for that reason, and Cisco's mobile agent logs the agent out later instead. Here, with
``ack_digit`` set, the adapter reports an answered dial as ANSWERED and bridges it only after the right key
(``ChannelDtmfReceived``); the leg stays ``ringing`` meanwhile, so it is never ``connected``, never made ready and
gets no customer call. When ``ack_seconds`` pass without the key, the reconciler hangs that dial up and counts it as
not answered: re-dialled within ``max_dial_attempts`` and the back-off, then ``failed`` — the agent's session is never
ended for it. Each answer without the key and each wrong key is audited (``voice.leg``, number masked).
"""

from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from gateway.clock import as_utc
from gateway.voice.models import CallEvent, CallLeg, LegState
from gateway.voice.service import dial_ended, report
from gateway.voice.settings import VoiceSettings


def answered_at(db: Session, leg: CallLeg) -> datetime | None:
    """When the leg's current dial was answered without the key yet (None: not answered, or acknowledged)."""
    if leg.state is not LegState.RINGING or leg.channel_id is None:
        return None
    events = db.exec(
        select(CallEvent)
        .where(CallEvent.leg_id == leg.id, col(CallEvent.kind).in_(("dial", "answered")))
        .order_by(col(CallEvent.id).desc())
    ).first()
    return as_utc(events.at) if events is not None and events.kind == "answered" else None


def acknowledgement_overdue(db: Session, leg: CallLeg, settings: VoiceSettings, now: datetime) -> bool:
    answered = answered_at(db, leg)
    return answered is not None and now - answered >= timedelta(seconds=settings.ack_seconds)


def not_acknowledged(db: Session, leg: CallLeg, settings: VoiceSettings, now: datetime) -> None:
    """The dial was answered but no key came in time: count it as not answered (the caller hangs the dial up)."""
    problem = f"answered, but the key {settings.ack_digit} was not pressed within {settings.ack_seconds} s"
    leg.problem = problem
    report(db, leg, "not_acknowledged", now)
    dial_ended(db, leg, None, settings, now)
    if leg.state is LegState.REQUESTED:
        leg.problem = f"{problem} (voicemail?); re-dialling"
