"""The SMS satisfaction survey after each answered customer call: planned with the call's end, sent by a
background pass, answered by the customer's reply (docs/voice.md, "Satisfaction survey").

The call's end only writes the wanted survey (``plan_survey``, in the event's transaction); the pass sends it later
with no transaction open (``send_pending_surveys``), as the reconciler does with dials. A survey is taken by a
conditional update (``pending`` → ``sending``) committed before the text goes out, so two passes or two nodes never
send it at once. An attempt whose outcome was never recorded (its node died, the SMS gateway hung) is swept back to
``pending`` by a later pass (``retry_unconfirmed``), at most ``survey.attempts`` times, then failed. Whether such an
attempt's text went out cannot be known here, so every attempt carries the survey's own idempotency key and the SMS
gateway delivers it once.
Customer numbers are stored whole (a reply must find its survey) and shown or audited only masked.
"""

import logging
import unicodedata
from datetime import datetime, timedelta

import phonenumbers
from phonenumbers import PhoneNumberFormat
from sqlalchemy import func, update
from sqlmodel import Session, col, select

from gateway.audit.models import AuditEvent
from gateway.audit.service import record
from gateway.clock import as_utc
from gateway.errors import GatewayError
from gateway.events import nudge_after_commit
from gateway.notify.sms import SmsKeyInFlight, SmsSender
from gateway.voice.dialable import mask
from gateway.voice.errors import InboundTextRefused
from gateway.voice.models import (
    CallEvent,
    ReplyKind,
    SatisfactionSurvey,
    SurveyOptOut,
    SurveyReply,
    SurveyState,
)
from gateway.voice.reconcile import UnitOfWork
from gateway.voice.settings import SurveySettings, VoiceSettings

log = logging.getLogger(__name__)
ACTOR = "voice.survey"
SURVEY_WANTED = "voice.survey_wanted"


def customer_number(caller: str | None, region: str | None) -> str | None:
    """The caller's number as E.164, or None when it was withheld or is no valid number (nothing to text)."""
    if not caller:
        return None
    try:
        parsed = phonenumbers.parse(caller.strip(), region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, PhoneNumberFormat.E164)


def _answered_before(db: Session, ended: CallEvent) -> CallEvent | None:
    """The ``call.answered`` event this end closes: the leg's customer-call event just before it, if answered (an
    offered call that ends unanswered, or a repeated end, gets no survey)."""
    previous = db.exec(
        select(CallEvent)
        .where(
            CallEvent.leg_id == ended.leg_id,
            col(CallEvent.kind).startswith("call."),
            col(CallEvent.id) < ended.id,
        )
        .order_by(col(CallEvent.id).desc())
    ).first()
    return previous if previous is not None and previous.kind == "call.answered" else None


def plan_survey(db: Session, ended: CallEvent, settings: VoiceSettings, now: datetime) -> SatisfactionSurvey | None:
    """Want one survey for the answered call ``ended`` closes; None when the survey is off, the call was not
    answered or the caller's number is unknown. Flushes in the caller's transaction."""
    if not settings.survey.enabled or ended.kind != "call.ended":
        return None
    answered = _answered_before(db, ended)
    if answered is None:
        return None
    region = settings.allowed_countries[0] if settings.allowed_countries else None
    number = customer_number(ended.caller or answered.caller, region)
    if number is None:
        return None
    assert ended.id is not None  # flushed by record_customer_call
    survey = SatisfactionSurvey(
        call_event_id=ended.id,
        session_id=ended.session_id,
        person_id=ended.person_id,
        login=ended.login,
        customer_e164=number,
        state=SurveyState.PENDING,
        created_at=now,
    )
    db.add(survey)
    db.flush()
    nudge_after_commit(db, SURVEY_WANTED, survey.id)
    return survey


def is_opted_out(db: Session, e164: str) -> bool:
    return db.get(SurveyOptOut, e164) is not None


def opt_out(db: Session, e164: str, *, source: str, actor: str, now: datetime) -> None:
    """Never survey ``e164`` again (idempotent); audited with the number masked."""
    if is_opted_out(db, e164):
        return
    db.add(SurveyOptOut(e164=e164, source=source, at=now))
    detail = {"number": mask(e164), "source": source}
    record(db, actor=actor, action="voice.survey.opt_out", outcome="ok", detail=detail)


def _take(unit: UnitOfWork, batch: int, now: datetime) -> list[int]:
    """Ids of pending surveys this pass now owns, each marked ``sending`` with ``sent_at = now`` (the attempt's
    start, which its outcome must still find); a survey another pass took first is skipped."""
    with unit() as db:
        candidates = db.exec(
            select(SatisfactionSurvey.id)
            .where(col(SatisfactionSurvey.state) == SurveyState.PENDING)
            .order_by(col(SatisfactionSurvey.id))
            .limit(batch)
        ).all()
    taken = []
    for survey_id in candidates:
        with unit() as db:
            claim = db.execute(
                update(SatisfactionSurvey)
                .where(col(SatisfactionSurvey.id) == survey_id, col(SatisfactionSurvey.state) == SurveyState.PENDING)
                .values(state=SurveyState.SENDING, sent_at=now)
            )
            if claim.rowcount == 1:  # type: ignore[attr-defined]
                taken.append(survey_id)
    return [survey_id for survey_id in taken if survey_id is not None]


def _audit_detail(survey: SatisfactionSurvey) -> dict[str, object]:
    return {"number": mask(survey.customer_e164), "call_event": survey.call_event_id, "agent": survey.login}


def _outcome(unit: UnitOfWork, survey_id: int, state: SurveyState, problem: str | None, now: datetime) -> None:
    """Record the outcome of the attempt that began at ``now``, only if the survey is still in that attempt: an
    attempt the sweep gave up on (its gateway hung past ``unconfirmed_seconds``) is audited as ``late`` and changes
    nothing, since the survey has been retried or failed meanwhile."""
    with unit() as db:
        current = (
            col(SatisfactionSurvey.id) == survey_id,
            col(SatisfactionSurvey.state) == SurveyState.SENDING,
            col(SatisfactionSurvey.sent_at) == now,
        )
        settled = db.execute(
            update(SatisfactionSurvey)
            .where(*current)
            .values(state=state, problem=problem, sent_at=now if state is SurveyState.SENT else None)
        )
        survey = db.get(SatisfactionSurvey, survey_id)
        assert survey is not None
        detail = _audit_detail(survey)
        if settled.rowcount == 1:  # type: ignore[attr-defined]
            outcome = {SurveyState.SENT: "ok", SurveyState.OPTED_OUT: "opted_out"}.get(state, "failed")
        else:
            log.warning("survey %s: an attempt given up on ended %s; it was retried or failed since", survey_id, state)
            outcome, detail["result"] = "late", state.value
        record(db, actor=ACTOR, action="voice.survey.send", outcome=outcome, target=str(survey_id), detail=detail)


def send_pending_surveys(unit: UnitOfWork, sms: SmsSender, settings: SurveySettings, now: datetime) -> int:
    """One pass: text each pending survey once (an opted-out number is skipped), record each outcome; returns how
    many went out. The SMS gateway is called with no transaction open, with the survey's own idempotency key so a
    repeated attempt (``retry_unconfirmed``) is delivered once by a gateway that honours it."""
    sent = 0
    for survey_id in _take(unit, settings.batch, now):
        with unit() as db:
            survey = db.get(SatisfactionSurvey, survey_id)
            assert survey is not None
            number, opted_out = survey.customer_e164, is_opted_out(db, survey.customer_e164)
        if opted_out:
            _outcome(unit, survey_id, SurveyState.OPTED_OUT, None, now)
            continue
        try:
            sms.send(number, settings.message(), key=f"sohogw-survey-{survey_id}")
        except SmsKeyInFlight as unknown:
            # An earlier attempt is still in the gateway's hands: the survey stays `sending`, and the sweep tries
            # again after `unconfirmed_seconds`, when the repeat is answered as that attempt ended.
            log.info("survey %s: %s", survey_id, unknown.message)
            continue
        except GatewayError as error:
            log.warning("survey %s not sent: %s", survey_id, error.message)
            _outcome(unit, survey_id, SurveyState.FAILED, error.message[:255], now)
            continue
        _outcome(unit, survey_id, SurveyState.SENT, None, now)
        sent += 1
    return sent


def _unconfirmed_attempts(db: Session, survey: SatisfactionSurvey) -> int:
    """Earlier attempts of ``survey`` given up on, counted from their audit rows (the survey's own record of them);
    rows older than the survey cannot be its own, which keeps the count to the indexed recent rows."""
    return db.exec(
        select(func.count())
        .select_from(AuditEvent)
        .where(
            AuditEvent.action == "voice.survey.send",
            AuditEvent.outcome == "unconfirmed",
            AuditEvent.target == str(survey.id),
            col(AuditEvent.at) >= as_utc(survey.created_at),
        )
    ).one()


def retry_unconfirmed(db: Session, settings: SurveySettings, now: datetime) -> int:
    """Surveys ``sending`` for more than ``unconfirmed_seconds`` (their node died, or the SMS gateway hung, between
    taking them and recording the outcome) go back to ``pending``, audited ``unconfirmed`` with the attempt's number;
    one whose last allowed attempt is unconfirmed becomes ``failed``, audited too. Conditional on the attempt being
    the one read, so two nodes' sweeps act once. In the caller's transaction; returns how many were touched."""
    stuck = db.exec(
        select(SatisfactionSurvey)
        .where(
            col(SatisfactionSurvey.state) == SurveyState.SENDING,
            col(SatisfactionSurvey.sent_at) < now - timedelta(seconds=settings.unconfirmed_seconds),
        )
        .order_by(col(SatisfactionSurvey.id))
        .limit(settings.batch)  # a pass sends at most a batch; the next pass sweeps the rest
    ).all()
    touched = 0
    for survey in stuck:
        attempt = 1 + _unconfirmed_attempts(db, survey)
        last = attempt >= settings.attempts
        problem = f"no outcome recorded for {attempt} attempt(s); the SMS gateway may have texted it" if last else None
        swept = db.execute(
            update(SatisfactionSurvey)
            .where(
                col(SatisfactionSurvey.id) == survey.id,
                col(SatisfactionSurvey.state) == SurveyState.SENDING,
                col(SatisfactionSurvey.sent_at) == survey.sent_at,
            )
            .values(state=SurveyState.FAILED if last else SurveyState.PENDING, sent_at=None, problem=problem)
        )
        if swept.rowcount != 1:  # type: ignore[attr-defined]
            continue  # another node's sweep, or the attempt's own outcome, came first
        touched += 1
        detail = {**_audit_detail(survey), "attempt": attempt, "began": as_utc(survey.sent_at or now).isoformat()}
        outcome = "failed" if last else "unconfirmed"
        record(db, actor=ACTOR, action="voice.survey.send", outcome=outcome, target=str(survey.id), detail=detail)
    return touched


def _score(text: str, settings: SurveySettings) -> int | None:
    """The score a reply gives, or None; full-width digits (common from Chinese handsets) count as digits."""
    normalized = unicodedata.normalize("NFKC", text).strip().rstrip(".。")
    if len(normalized) == 1 and normalized.isdigit() and settings.lowest <= int(normalized) <= settings.highest:
        return int(normalized)
    return None


def _is_stop(text: str, settings: SurveySettings) -> bool:
    normalized = unicodedata.normalize("NFKC", text).strip().casefold()
    return normalized in {word.casefold() for word in settings.stop_words}


def _latest_sent(db: Session, e164: str) -> SatisfactionSurvey | None:
    return db.exec(
        select(SatisfactionSurvey)
        .where(SatisfactionSurvey.customer_e164 == e164, SatisfactionSurvey.state == SurveyState.SENT)
        .order_by(col(SatisfactionSurvey.sent_at).desc())
    ).first()


def record_reply(db: Session, message: dict[str, object], settings: VoiceSettings, now: datetime) -> SurveyReply:
    """Store one inbound text (already authenticated) as a score, a stop, or garbled/unknown/late, link it to the
    latest survey sent to its number, and audit it. A redelivered ``message_id`` returns the stored reply."""
    message_id, sender, text = (message.get(key) for key in ("message_id", "from", "text"))
    if not isinstance(message_id, str) or not message_id or not isinstance(sender, str) or not isinstance(text, str):
        raise InboundTextRefused("an inbound text needs message_id, from and text (strings); see docs/voice.md")
    stored = db.exec(select(SurveyReply).where(SurveyReply.message_id == message_id[:128])).first()
    if stored is not None:
        return stored
    region = settings.allowed_countries[0] if settings.allowed_countries else None
    e164 = customer_number(sender, region) or sender.strip()[:32]
    survey = _latest_sent(db, e164)
    score = _score(text, settings.survey)
    if _is_stop(text, settings.survey):
        kind = ReplyKind.STOP
        opt_out(db, e164, source="stop_reply", actor=ACTOR, now=now)
    elif survey is None:
        kind = ReplyKind.UNKNOWN
    elif score is None:
        kind = ReplyKind.GARBLED
    elif survey.score is not None or now - as_utc(survey.sent_at or now) > timedelta(hours=settings.survey.reply_hours):
        kind = ReplyKind.LATE
    else:
        kind = ReplyKind.SCORE
        survey.score, survey.replied_at = score, now
        db.add(survey)
    reply = SurveyReply(
        message_id=message_id[:128],
        sender_e164=e164,
        text=text[:160],
        kind=kind,
        survey_id=survey.id if survey is not None else None,
        score=score if kind is ReplyKind.SCORE else None,
        received_at=now,
    )
    db.add(reply)
    db.flush()
    detail = {"number": mask(e164), "kind": kind.value, "survey": reply.survey_id}
    record(db, actor=ACTOR, action="voice.survey.reply", outcome=kind.value, target=str(reply.id), detail=detail)
    return reply
