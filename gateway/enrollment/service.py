"""Applications: start one, find one, and the callback number it vets. Decisions are in ``decisions.py``.

Every change writes an audit row in the same transaction (``audit_change``).
"""

import json
from datetime import datetime

import phonenumbers
from sqlmodel import Session, col, or_, select

from gateway.audit.service import record
from gateway.enrollment import stages as order
from gateway.enrollment.errors import InvalidApplication
from gateway.enrollment.handoff import HandOff, find_person
from gateway.enrollment.models import Application, ApplicationState
from gateway.enrollment.settings import EnrollmentSettings
from gateway.errors import Conflict, NotFound
from gateway.sessions.models import HomeSession

LIVE_STATES = (ApplicationState.OPEN, ApplicationState.APPROVED)


def callback_e164(raw: str, region: str) -> str:
    """A callback number in E.164, checked by libphonenumber (a number that cannot exist is refused)."""
    try:
        number = phonenumbers.parse(raw.strip(), region)
    except phonenumbers.NumberParseException:
        raise InvalidApplication(f"{raw!r} is not a phone number", key="phone_invalid", number=raw) from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidApplication(
            f"{raw!r} is not a valid phone number (for {region} unless it starts with +)",
            key="phone_invalid",
            number=raw,
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def audit_change(
    db: Session, application: Application, action: str, outcome: str, actor: str, now: datetime, **detail: object
) -> None:
    record(
        db,
        actor=actor,
        action=action,
        target=application.login,
        outcome=outcome,
        detail={"application": application.id, "stage": application.stage, **detail},
        clock=lambda: now,
    )


def start_application(
    db: Session,
    handoff: HandOff,
    login: str,
    *,
    callback_number: str,
    settings: EnrollmentSettings,
    actor: str,
    now: datetime,
) -> Application:
    """Open an application at the first stage for a person the directory knows, unless one is already live."""
    login = login.strip()
    if not login:
        raise InvalidApplication("the login is empty", key="application_no_login")
    e164 = callback_e164(callback_number, settings.phone_region) if callback_number.strip() else None
    person = find_person(handoff.directory, login)
    login = person.login  # the account name as the directory spells it, whatever spelling HR typed
    same_person = or_(Application.login == login, Application.person_id == person.person_id)  # renamed or not
    live = db.exec(select(Application).where(same_person, col(Application.state).in_(LIVE_STATES))).first()
    if live is not None:
        raise Conflict(
            f"{login} already has an application ({live.state.value}, at {live.stage})",
            key="application_exists",
            login=login,
        )
    application = Application(
        login=login,
        person_id=person.person_id,
        display_name=person.display_name,
        upn=person.upn,
        user_dn=person.dn,
        callback_e164=e164,
        state=ApplicationState.OPEN,
        stage=order.first_stage(settings.stages),
        started_by=actor,
        started_at=now,
        updated_at=now,
    )
    db.add(application)
    db.flush()
    audit_change(db, application, "enrollment.apply", "opened", actor, now)
    return application


def get_application(db: Session, application_id: int) -> Application:
    application = db.get(Application, application_id)
    if application is None:
        raise NotFound(f"no application {application_id}")
    return application


def latest_application(db: Session, login: str) -> Application | None:
    """The person's newest application, for their own status page."""
    query = select(Application).where(Application.login == login).order_by(col(Application.id).desc())
    return db.exec(query.limit(1)).first()


def vetted_number(db: Session, login: str) -> str | None:
    """The E.164 callback number HR vetted for an approved agent (for voice, when it was not yet registered there)."""
    query = select(Application).where(Application.login == login, Application.state == ApplicationState.APPROVED)
    application = db.exec(query.order_by(col(Application.id).desc()).limit(1)).first()
    return application.callback_e164 if application else None


def works_from_home(session: HomeSession, settings: EnrollmentSettings) -> bool:
    """Whether the person already is in the home agents' group (approval's group, or put there before the vetting
    ran here): their enrollment page says so instead of "you have not applied"."""
    wanted = settings.agent_group.casefold()
    names = [*json.loads(session.groups), *json.loads(session.policy_groups)]
    return any(str(name).casefold() == wanted for name in names)
