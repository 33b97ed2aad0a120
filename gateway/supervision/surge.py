"""Surge call-in: a supervisor asks the standby agents to come online and watches who does.

Standby agents and how to reach them are kept by supervisors (``StandbyAgent``). A call-in sends each of them an
e-mail and/or SMS, records how each message went, and its status lists who has logged in since it started.
"""

import json
from dataclasses import dataclass
from datetime import datetime

import phonenumbers
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from gateway.audit.service import record
from gateway.clock import as_utc
from gateway.db import fits_column, session_scope
from gateway.directory import Directory
from gateway.directory.errors import AccountNotFound, DirectoryError, MalformedLogin
from gateway.errors import GatewayError, NotFound
from gateway.notify.sms import HttpSms
from gateway.sessions.models import HomeSession
from gateway.supervision.errors import SurgeRefused
from gateway.supervision.mail import send_mail
from gateway.supervision.models import CallIn, StandbyAgent
from gateway.supervision.settings import SupervisionSettings


@dataclass(frozen=True)
class Answer:
    login: str
    delivery: str
    online_at: datetime | None


def _e164(phone: str) -> str:
    """The number in E.164 (``+8613812345678``), as the SMS gateway needs it; refused otherwise."""
    try:
        parsed = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is None or not phonenumbers.is_valid_number(parsed):
        raise SurgeRefused(f"{phone!r} is not a phone number in E.164 form", key="surge_phone", phone=phone)
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def set_standby(
    db: Session,
    login: str,
    email: str | None,
    phone: str | None,
    *,
    supervisor: str,
    source: str,
    now: datetime,
    directory: Directory,
) -> StandbyAgent:
    """Add or update a standby agent and how to reach them; audited, since it decides who gets called in. The
    login must be an account of the directory (a typo would call nobody in), reachable by a valid address."""
    try:
        login = directory.find_account(login).name
    except (AccountNotFound, MalformedLogin):  # no account has it, or none can
        raise SurgeRefused(f"no account {login!r} in the directory", key="surge_unknown_login", login=login) from None
    except DirectoryError as error:
        raise SurgeRefused(f"the directory cannot be asked: {error}", key="surge_directory") from None
    phone = _e164(phone) if phone else None
    if email:
        fits_column(email, StandbyAgent, "email")
    if email and ("@" not in email or email.startswith("@") or email.endswith("@")):
        raise SurgeRefused(f"{email!r} is not an e-mail address", key="surge_email", email=email)
    if not (email or phone):
        raise SurgeRefused("a standby agent needs an e-mail address or a phone number", key="surge_no_address")
    agent = db.get(StandbyAgent, login) or StandbyAgent(login=login, updated_at=now)
    agent.email, agent.phone, agent.updated_at = email or None, phone or None, now
    db.add(agent)
    db.flush()
    record(
        db,
        actor=supervisor,
        source=source,
        action="supervision.standby.set",
        target=login,
        outcome="saved",
        detail={"email": agent.email, "phone": agent.phone},
        clock=lambda: now,
    )
    return agent


def remove_standby(db: Session, login: str, *, supervisor: str, source: str, now: datetime) -> None:
    """Take an agent off the standby list (audited); removing someone not on it changes nothing."""
    agent = db.get(StandbyAgent, login)
    if agent is None:
        return
    db.delete(agent)
    db.flush()
    record(
        db,
        actor=supervisor,
        source=source,
        action="supervision.standby.remove",
        target=login,
        outcome="removed",
        clock=lambda: now,
    )


def standby_agents(db: Session) -> list[StandbyAgent]:
    return list(db.exec(select(StandbyAgent).order_by(col(StandbyAgent.login))).all())


def _reach(agent: StandbyAgent, message: str, settings: SupervisionSettings) -> str:
    outcomes = []
    if agent.email:
        try:
            send_mail(settings.mail, [agent.email], "[SOHO Gateway] please come online", message)
            outcomes.append("mail:sent")
        except GatewayError as error:
            outcomes.append(f"mail:failed ({error.message})")
    if agent.phone:
        try:
            HttpSms(settings.sms).send(agent.phone, message)
            outcomes.append("sms:sent")
        except GatewayError as error:
            outcomes.append(f"sms:failed ({error.message})")
    return " ".join(outcomes) or "no address"


def call_in(engine: Engine, supervisor: str, message: str, settings: SupervisionSettings, now: datetime) -> int:
    """Notify every standby agent (outside a transaction: the sending may take seconds); returns the call-in id."""
    with session_scope(engine) as db:
        agents = standby_agents(db)
    if not agents:
        raise SurgeRefused("no agent is on standby: add standby agents first", key="surge_nobody")
    delivery = {agent.login: _reach(agent, message, settings) for agent in agents}
    with session_scope(engine) as db:
        row = CallIn(started_by=supervisor, message=message[:500], started_at=now, delivery=json.dumps(delivery))
        db.add(row)
        db.flush()
        record(db, actor=supervisor, action="supervision.call_in", outcome="sent", detail={"delivery": delivery})
        assert row.id is not None
        return row.id


def call_in_status(db: Session, call_in_id: int) -> tuple[CallIn, list[Answer]]:
    """Each agent asked, how their message went, and when they first logged in after the call-in started."""
    row = db.get(CallIn, call_in_id)
    if row is None:
        raise NotFound(f"there is no call-in {call_in_id}")
    delivery: dict[str, str] = json.loads(row.delivery)
    answers = []
    for login, outcome in sorted(delivery.items()):
        first = db.exec(
            select(HomeSession.created_at)
            .where(HomeSession.login == login, col(HomeSession.created_at) >= row.started_at)
            .order_by(col(HomeSession.created_at))
        ).first()
        answers.append(Answer(login, outcome, as_utc(first) if first else None))
    return row, answers


def latest_call_ins(db: Session, limit: int = 10) -> list[CallIn]:
    return list(db.exec(select(CallIn).order_by(col(CallIn.id).desc()).limit(limit)).all())
