"""The callback-number registry: add (a code is texted), confirm, approve, HR-vet, remove, and pick the one to call.

Codes are short, so they are guarded by expiry and an attempt limit, and kept only as a salted hash so that a
database reader cannot confirm a number they do not hold. Every change is audited with the number masked.
"""

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlmodel import Session, col, func, select

from gateway.audit.models import AuditEvent
from gateway.audit.service import record
from gateway.clock import as_utc
from gateway.errors import Conflict, NotFound
from gateway.notify.sms import SmsSender
from gateway.voice.dialable import check_number, mask
from gateway.voice.errors import CodeRefused, TooManyCodes, WrongCode
from gateway.voice.models import CallbackNumber, NumberAwaitingApproval, NumberPublic, NumberStatus
from gateway.voice.settings import VoiceSettings

CODE_SENT = ("voice.number.add", "code_sent")
"""The audit row every texted code writes: the log of texts sent, which the re-send limits count."""


def _limit_texts(
    db: Session, person_id: str, login: str, number: CallbackNumber | None, settings: VoiceSettings, now: datetime
) -> None:
    """Refuse (audited) a code to a number texted moments ago, or beyond the agent's hourly count of texts."""
    wait = 0.0
    if number is not None and number.code_expires_at is not None:
        sent_at = as_utc(number.code_expires_at) - timedelta(seconds=settings.code_ttl_seconds)
        wait = settings.code_resend_seconds - (now - sent_at).total_seconds()
    action, outcome = CODE_SENT
    sent_last_hour = db.exec(
        select(func.count())
        .select_from(AuditEvent)
        .where(
            AuditEvent.action == action,
            AuditEvent.outcome == outcome,
            AuditEvent.target == login,
            col(AuditEvent.at) > now - timedelta(hours=1),
        )
    ).one()
    if wait <= 0 and sent_last_hour < settings.codes_per_hour:
        return
    message = (
        f"a code was texted to this number moments ago; wait {int(wait) + 1} s before asking again"
        if wait > 0
        else f"{sent_last_hour} codes were texted in the last hour; ask again later or call the service desk"
    )
    record(
        db,
        actor=login,
        action=action,
        target=login,
        outcome="too_many_codes",
        detail={
            "number": mask(number.e164) if number is not None else None,
            "sent_last_hour": sent_last_hour,
            "person": person_id,
        },
        clock=lambda: now,
    )
    db.flush()
    raise TooManyCodes(message)


def _code_hash(salt: str, code: str) -> str:
    return hashlib.sha256(f"{salt}:{code}".encode()).hexdigest()


def _audit(db: Session, actor: str, action: str, number: CallbackNumber, outcome: str, now: datetime) -> None:
    record(
        db,
        actor=actor,
        action=action,
        target=number.login,
        outcome=outcome,
        detail={"number": mask(number.e164), "status": number.status.value, "person": number.person_id},
        clock=lambda: now,
    )


def _find(db: Session, person_id: str, number_id: int) -> CallbackNumber:
    number = db.get(CallbackNumber, number_id)
    if number is None or number.person_id != person_id:
        raise NotFound("no such callback number on your account")
    return number


def add_number(
    db: Session,
    person_id: str,
    login: str,
    raw: str,
    settings: VoiceSettings,
    sms: SmsSender,
    *,
    actor: str,
    now: datetime,
) -> CallbackNumber:
    """Register ``raw`` for the person (or re-send the code of one awaiting it) and text a one-time code to it.

    ``login`` is the person's account name now, kept on the number for display."""
    dialable = check_number(raw, settings)
    number = db.exec(
        select(CallbackNumber).where(CallbackNumber.person_id == person_id, CallbackNumber.e164 == dialable.e164)
    ).first()
    if number is not None and number.status is not NumberStatus.AWAITING_CODE:
        raise Conflict(f"{mask(dialable.e164)} is already on your account")
    _limit_texts(db, person_id, login, number, settings, now)
    if number is None:
        number = CallbackNumber(
            person_id=person_id,
            login=login,
            e164=dialable.e164,
            region=dialable.region,
            kind=dialable.kind,
            status=NumberStatus.AWAITING_CODE,
            created_at=now,
            updated_at=now,
        )
    code = f"{secrets.randbelow(10**settings.code_length):0{settings.code_length}d}"
    number.code_salt = secrets.token_hex(16)
    number.code_sha256 = _code_hash(number.code_salt, code)
    number.code_expires_at = now + timedelta(seconds=settings.code_ttl_seconds)
    number.code_attempts, number.login, number.updated_at = 0, login, now
    db.add(number)
    db.flush()
    _audit(db, actor, CODE_SENT[0], number, CODE_SENT[1], now)
    minutes = settings.code_ttl_seconds // 60
    sms.send(number.e164, f"SOHO Gateway: your callback confirmation code is {code} (valid {minutes} min).")
    return number


def confirm_number(
    db: Session, person_id: str, number_id: int, code: str, settings: VoiceSettings, *, actor: str, now: datetime
) -> CallbackNumber:
    """Accept the texted code once, within its lifetime and attempt limit; the number then waits for approval or
    is confirmed, as the settings say."""
    number = _find(db, person_id, number_id)
    if number.status is not NumberStatus.AWAITING_CODE or number.code_sha256 is None or number.code_salt is None:
        raise CodeRefused("this number is not waiting for a code")
    if number.code_expires_at is None or now >= as_utc(number.code_expires_at):
        raise CodeRefused("the code has expired; ask for a new one")
    if number.code_attempts >= settings.code_max_attempts:
        raise CodeRefused("too many wrong codes; ask for a new one")
    if not hmac.compare_digest(_code_hash(number.code_salt, code.strip()), number.code_sha256):
        number.code_attempts += 1
        db.add(number)
        _audit(db, actor, "voice.number.confirm", number, "wrong_code", now)
        db.flush()
        raise WrongCode("the code is wrong")
    number.status = NumberStatus.PENDING_APPROVAL if settings.changes_need_approval else NumberStatus.CONFIRMED
    number.code_salt = number.code_sha256 = number.code_expires_at = None
    number.confirmed_at = number.updated_at = now
    db.add(number)
    db.flush()
    _audit(db, actor, "voice.number.confirm", number, number.status.value, now)
    return number


def awaiting_approval(db: Session) -> list[NumberAwaitingApproval]:
    """Confirmed numbers a security admin has yet to approve (``changes_need_approval``), oldest first, masked."""
    query = (
        select(CallbackNumber)
        .where(CallbackNumber.status == NumberStatus.PENDING_APPROVAL)
        .order_by(col(CallbackNumber.confirmed_at), col(CallbackNumber.id))
    )
    return [
        NumberAwaitingApproval(
            id=n.id or 0,
            login=n.login,
            masked=mask(n.e164),
            kind=n.kind,
            confirmed_at=as_utc(n.confirmed_at) if n.confirmed_at else None,
        )
        for n in db.exec(query)
    ]


def approve_number(db: Session, number_id: int, *, actor: str, now: datetime) -> CallbackNumber:
    """A security admin approves a confirmed number that waits for approval; anything else is refused, audited."""
    number = db.get(CallbackNumber, number_id)
    if number is None or number.status is not NumberStatus.PENDING_APPROVAL:
        record(
            db,
            actor=actor,
            action="voice.number.approve",
            target=number.login if number is not None else str(number_id),
            outcome="refused",
            detail={"number_id": number_id, "status": number.status.value if number is not None else None},
            clock=lambda: now,
        )
        raise NotFound("no callback number waits for approval under this id")
    number.status, number.approved_by, number.updated_at = NumberStatus.CONFIRMED, actor, now
    db.add(number)
    db.flush()
    _audit(db, actor, "voice.number.approve", number, "approved", now)
    return number


def mark_vetted(db: Session, person_id: str, e164: str, actor: str, now: datetime) -> CallbackNumber:
    """HR's mark that this is the number checked at the home visit (used when ``require_hr_vetted`` is on)."""
    number = db.exec(
        select(CallbackNumber).where(CallbackNumber.person_id == person_id, CallbackNumber.e164 == e164)
    ).first()
    if number is None:
        raise NotFound(f"{person_id} has no callback number {mask(e164)}")
    number.vetted_at, number.vetted_by, number.updated_at = now, actor, now
    db.add(number)
    db.flush()
    _audit(db, actor, "voice.number.vet", number, "vetted", now)
    return number


def adopt_vetted_number(
    db: Session, person_id: str, login: str, e164: str, settings: VoiceSettings, *, actor: str, now: datetime
) -> CallbackNumber:
    """Register the number HR vetted at the home visit as confirmed and vetted, without a texted code: HR saw the
    line in the home, which is more than a code proves, and it is the way on when no SMS can be sent. The caller
    passes the number from the approved application, never one the person typed."""
    dialable = check_number(e164, settings)
    number = db.exec(
        select(CallbackNumber).where(CallbackNumber.person_id == person_id, CallbackNumber.e164 == dialable.e164)
    ).first()
    if number is None:
        number = CallbackNumber(
            person_id=person_id,
            login=login,
            e164=dialable.e164,
            region=dialable.region,
            kind=dialable.kind,
            status=NumberStatus.CONFIRMED,
            created_at=now,
            updated_at=now,
        )
    number.status, number.code_sha256, number.login, number.updated_at = NumberStatus.CONFIRMED, None, login, now
    number.vetted_at, number.vetted_by = now, number.vetted_by or "hr"
    db.add(number)
    db.flush()
    _audit(db, actor, "voice.number.adopt_vetted", number, "confirmed", now)
    return number


def remove_number(db: Session, person_id: str, number_id: int, *, actor: str, now: datetime) -> None:
    number = _find(db, person_id, number_id)
    _audit(db, actor, "voice.number.remove", number, "removed", now)
    db.delete(number)
    db.flush()


def list_numbers(db: Session, person_id: str) -> list[NumberPublic]:
    numbers = db.exec(
        select(CallbackNumber).where(CallbackNumber.person_id == person_id).order_by(col(CallbackNumber.id))
    )
    return [
        NumberPublic(id=n.id or 0, masked=mask(n.e164), kind=n.kind, status=n.status, vetted=n.vetted_at is not None)
        for n in numbers
    ]


def usable_number(db: Session, person_id: str, settings: VoiceSettings) -> CallbackNumber | None:
    """The number to call: confirmed (and vetted when required), still inside the policy; the latest wins."""
    query = (
        select(CallbackNumber)
        .where(CallbackNumber.person_id == person_id, CallbackNumber.status == NumberStatus.CONFIRMED)
        .order_by(col(CallbackNumber.confirmed_at).desc(), col(CallbackNumber.id).desc())
    )
    for number in db.exec(query):
        if settings.require_hr_vetted and number.vetted_at is None:
            continue
        return number
    return None
