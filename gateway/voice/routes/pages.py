"""The home agent's phone page (/agent/phone): callback numbers, the callback line's state, ready / not ready.

Plain HTML forms checked with the session's form CSRF secret (``CheckedForm``), calling the same service functions
as the JSON API in ``routes.py``. A refusal re-renders the page with a translated message instead of an error page,
so the agent keeps their context; what it rolls back or keeps is what the JSON API does (a wrong code is counted).
"""

import re
from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from gateway.deps import ClockDep, DbSession, RowId
from gateway.errors import Conflict, GatewayError, NotFound
from gateway.notify.sms import HttpSms, SmsNotSent
from gateway.sessions.deps import AgentSession, CheckedForm
from gateway.sessions.models import HomeSession
from gateway.voice import numbers
from gateway.voice.deps import SmsSettingsDep, VoiceSettingsDep
from gateway.voice.dialable import NumberRefused
from gateway.voice.service import CallbackRateLimited, NoCallbackNumber, set_ready
from gateway.voice.status import current_leg
from gateway.web.i18n import translate
from gateway.web.pages import language_of, render

page_router = APIRouter(tags=["voice"])
PAGE = "/agent/phone"

# Which translated message a refusal shows. A number the policy refuses names its case in ``reason``; the code
# refusals share classes, so their English wording names the case. A refusal not listed here still shows a
# translated headline with the service's own text.
_REFUSALS: tuple[tuple[type[GatewayError], str, str], ...] = (
    (numbers.WrongCode, r"", "voice.refused.wrong_code"),
    (numbers.CodeRefused, r"expired", "voice.refused.code_expired"),
    (numbers.CodeRefused, r"too many", "voice.refused.too_many_codes"),
    (numbers.CodeRefused, r"not waiting", "voice.refused.not_waiting"),
    (CallbackRateLimited, r"", "voice.refused.rate_limited"),
    (numbers.TooManyCodes, r"", "voice.refused.too_many_texts"),
    (NoCallbackNumber, r"", "voice.refused.no_number"),
    (SmsNotSent, r"", "voice.refused.sms_not_sent"),
    (Conflict, r"already on your account", "voice.refused.already_added"),
    (Conflict, r"no callback line", "voice.refused.no_line"),
    (NotFound, r"", "voice.refused.not_found"),
)


def refusal_key(error: GatewayError) -> str:
    """The translation key of the message the page shows for ``error``."""
    if isinstance(error, NumberRefused):
        return f"voice.refused.{error.reason}"
    for kind, pattern, key in _REFUSALS:
        if isinstance(error, kind) and re.search(pattern, error.message):
            return key
    return "voice.refused.other"


def _page(
    request: Request, db: Session, session: HomeSession, status_code: int = 200, error: str | None = None
) -> HTMLResponse:
    return render(
        request,
        "voice_phone.html",
        status_code,
        numbers=numbers.list_numbers(db, session.person_id),
        leg=current_leg(db, session.id),
        error=error,
    )


def _act(request: Request, db: Session, session: HomeSession, action: Callable[[], object]) -> Response:
    """Run one service call; on success back to the page (post/redirect/get), on a refusal the page says why."""
    try:
        action()
    except GatewayError as error:
        if not isinstance(error, (numbers.WrongCode, numbers.TooManyCodes)):
            # The page answers, so the request commits: a counted attempt (or a refused text) stays, or the limit
            # means nothing; anything else is undone, e.g. an SMS that was not sent: no number waits for a code
            # nobody received.
            db.rollback()
        message = translate(language_of(request), refusal_key(error), detail=error.message)
        return _page(request, db, session, error.status_code, message)
    return RedirectResponse(PAGE, status_code=303)


@page_router.get(PAGE, response_class=HTMLResponse)
def phone_page(request: Request, session: AgentSession, db: DbSession) -> HTMLResponse:
    return _page(request, db, session)


@page_router.post(f"{PAGE}/numbers")
def add_number(
    request: Request,
    session: AgentSession,
    form: CheckedForm,
    db: DbSession,
    clock: ClockDep,
    voice: VoiceSettingsDep,
    sms_settings: SmsSettingsDep,
) -> Response:
    raw = str(form.get("number", ""))
    sms = HttpSms(sms_settings)
    return _act(
        request,
        db,
        session,
        lambda: numbers.add_number(
            db, session.person_id, session.login, raw, voice, sms, actor=session.login, now=clock()
        ),
    )


@page_router.post(f"{PAGE}/numbers/{{number_id}}/confirm")
def confirm_number(
    number_id: RowId,
    request: Request,
    session: AgentSession,
    form: CheckedForm,
    db: DbSession,
    clock: ClockDep,
    voice: VoiceSettingsDep,
) -> Response:
    code = str(form.get("code", ""))
    return _act(
        request,
        db,
        session,
        lambda: numbers.confirm_number(db, session.person_id, number_id, code, voice, actor=session.login, now=clock()),
    )


@page_router.post(f"{PAGE}/numbers/{{number_id}}/remove")
def remove_number(
    number_id: RowId, request: Request, session: AgentSession, form: CheckedForm, db: DbSession, clock: ClockDep
) -> Response:
    return _act(
        request,
        db,
        session,
        lambda: numbers.remove_number(db, session.person_id, number_id, actor=session.login, now=clock()),
    )


@page_router.post(f"{PAGE}/ready")
def ready(
    request: Request, session: AgentSession, form: CheckedForm, db: DbSession, clock: ClockDep, voice: VoiceSettingsDep
) -> Response:
    wanted = form.get("ready") == "true"
    return _act(request, db, session, lambda: set_ready(db, session, wanted, voice, now=clock()))
