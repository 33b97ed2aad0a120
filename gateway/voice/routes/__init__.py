"""Voice JSON API: the CTI webhook's event intake, and the agent's numbers, ready state, leg and calls.

Agent routes need the caller's active home session with the agent role (the portal's ``AgentSession``); those that
change state also need the session's CSRF secret in ``X-CSRF-Token`` (``ScriptCsrf``). The webhook route needs no
session: its HMAC signature is the check. Routes are plain ``def`` (run in the thread pool) because the service
calls block on the database. ``router``, what the app includes, carries this API under /voice, the agent's
phone page (``routes/pages.py``) and the security admins' approval page (``routes/approvals.py``).
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from gateway.db import keep_refusal
from gateway.deps import ClockDep, DbSession, RowId
from gateway.errors import NotFound
from gateway.notify.sms import HttpSms
from gateway.sessions.deps import AgentSession, ScriptCsrf
from gateway.voice import numbers
from gateway.voice.calls import CustomerCallPublic, customer_calls
from gateway.voice.deps import SmsSettingsDep, VoiceSettingsDep
from gateway.voice.errors import TooManyCodes, WrongCode
from gateway.voice.models import LegPublic, NumberPublic
from gateway.voice.routes.approvals import approvals_router
from gateway.voice.routes.pages import page_router
from gateway.voice.routes.surveys import router as survey_router
from gateway.voice.service import set_ready
from gateway.voice.sink import apply_event
from gateway.voice.status import current_leg
from gateway.voice.webhook import accept_event

api = APIRouter(prefix="/voice", tags=["voice"])


async def _raw_body(request: Request) -> bytes:
    """The body exactly as sent: the webhook's signature covers these bytes."""
    return await request.body()


RawBody = Annotated[bytes, Depends(_raw_body)]


class NumberIn(BaseModel):
    number: str


class CodeIn(BaseModel):
    code: str


class ReadyIn(BaseModel):
    ready: bool


@api.post("/webhook/events")
def webhook_event(
    request: Request, body: RawBody, db: DbSession, clock: ClockDep, settings: VoiceSettingsDep
) -> dict[str, bool]:
    event = accept_event(db, request.headers, body, settings.webhook, clock())
    return {"accepted": True, "applied": apply_event(db, event, settings, clock())}


@api.get("/numbers")
def my_numbers(session: AgentSession, db: DbSession) -> list[NumberPublic]:
    return numbers.list_numbers(db, session.person_id)


@api.post("/numbers", status_code=201)
def add_number(
    body: NumberIn,
    session: AgentSession,
    _checked: ScriptCsrf,
    db: DbSession,
    clock: ClockDep,
    settings: VoiceSettingsDep,
    sms: SmsSettingsDep,
) -> NumberPublic:
    try:
        number = numbers.add_number(
            db, session.person_id, session.login, body.number, settings, HttpSms(sms), actor=session.login, now=clock()
        )
    except TooManyCodes:
        keep_refusal(db)
        raise
    return next(n for n in numbers.list_numbers(db, session.person_id) if n.id == number.id)


@api.post("/numbers/{number_id}/confirm")
def confirm_number(
    number_id: RowId,
    body: CodeIn,
    session: AgentSession,
    _checked: ScriptCsrf,
    db: DbSession,
    clock: ClockDep,
    settings: VoiceSettingsDep,
) -> NumberPublic:
    try:
        number = numbers.confirm_number(
            db, session.person_id, number_id, body.code, settings, actor=session.login, now=clock()
        )
    except WrongCode:
        keep_refusal(db)  # the failed attempt, or the attempt limit means nothing
        raise
    return next(n for n in numbers.list_numbers(db, session.person_id) if n.id == number.id)


@api.delete("/numbers/{number_id}", status_code=204)
def remove_number(
    number_id: RowId, session: AgentSession, _checked: ScriptCsrf, db: DbSession, clock: ClockDep
) -> None:
    numbers.remove_number(db, session.person_id, number_id, actor=session.login, now=clock())


@api.post("/ready")
def ready(
    body: ReadyIn,
    session: AgentSession,
    _checked: ScriptCsrf,
    db: DbSession,
    clock: ClockDep,
    settings: VoiceSettingsDep,
) -> LegPublic:
    return set_ready(db, session, body.ready, settings, now=clock())


@api.get("/leg")
def my_leg(session: AgentSession, db: DbSession) -> LegPublic:
    leg = current_leg(db, session.id)
    if leg is None:
        raise NotFound("no callback line for this session yet")
    return leg


@api.get("/calls")
def my_calls(session: AgentSession, db: DbSession) -> list[CustomerCallPublic]:
    return customer_calls(db, session.id)


router = APIRouter()
"""What the app includes: the JSON API under /voice, the agent's phone page (``routes/pages.py``), the security
admins' approval of callback numbers (``routes/approvals.py``) and the SMS gateway's inbound survey replies
(``routes/surveys.py``)."""
router.include_router(api)
router.include_router(page_router)
router.include_router(approvals_router)
router.include_router(survey_router)
