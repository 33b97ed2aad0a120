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
from starlette.datastructures import FormData

from gateway.deps import ClockDep, DbSession, RowId
from gateway.errors import Conflict, GatewayError, NotFound
from gateway.notify.sms import HttpSms, SmsNotSent
from gateway.sessions.deps import AgentSession, CheckedForm
from gateway.sessions.models import HomeSession
from gateway.voice import numbers
from gateway.voice.deps import SmsSettingsDep, VoiceSettingsDep
from gateway.voice.dialable import mask
from gateway.voice.errors import (
    CallbackRateLimited,
    CodeRefused,
    NoCallbackNumber,
    NumberRefused,
    TooManyCodes,
    WrongCode,
)
from gateway.voice.service import set_ready
from gateway.voice.status import current_leg
from gateway.web.forms import AuditedAs, attempt, refused_page
from gateway.web.i18n import translate
from gateway.web.pages import language_of, render

page_router = APIRouter(tags=["voice"])
VettedNumberLookup = Callable[[Session, str], str | None]
"""Given an account name, the E.164 number HR vetted for it at the home visit, or None."""

PAGE = "/agent/phone"

# Which translated message a refusal shows. A number the policy refuses names its case in ``reason``; the code
# refusals share classes, so their English wording names the case. A refusal not listed here still shows a
# translated headline with the service's own text.
_REFUSALS: tuple[tuple[type[GatewayError], str, str], ...] = (
    (WrongCode, r"", "voice.refused.wrong_code"),
    (CodeRefused, r"expired", "voice.refused.code_expired"),
    (CodeRefused, r"too many", "voice.refused.too_many_codes"),
    (CodeRefused, r"not waiting", "voice.refused.not_waiting"),
    (CallbackRateLimited, r"", "voice.refused.rate_limited"),
    (TooManyCodes, r"", "voice.refused.too_many_texts"),
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


def _context(request: Request, db: Session, session: HomeSession) -> dict[str, object]:
    """The page's numbers, the callback line, and the number HR approved at the home visit (masked), if any, with
    whether it is still to be taken into the list."""
    approved = _vetted_number(request, db, session)
    listed = numbers.list_numbers(db, session.person_id)
    return {
        "numbers": listed,
        "leg": current_leg(db, session.id),
        "hr_number": mask(approved) if approved else None,
        "hr_number_listed": approved is not None and any(n.masked == mask(approved) for n in listed),
    }


def _vetted_number(request: Request, db: Session, session: HomeSession) -> str | None:
    """The number HR vetted for the agent: enrollment's answer, handed to the app (enrollment sits above voice)."""
    lookup: VettedNumberLookup = request.app.state.hr_vetted_number
    return lookup(db, session.login)


def _counted(error: GatewayError) -> bool:
    """A wrong code (or a refused text) must outlive the refusal, or the limit means nothing; anything else is
    undone (an SMS that was not sent: no number waits for a code nobody received)."""
    return isinstance(error, (WrongCode, TooManyCodes))


def _act(
    request: Request, db: Session, session: HomeSession, form: FormData, what: str, action: Callable[[], object]
) -> Response:
    """Run one service call (``gateway.web.forms``): on success back to the page (post/redirect/get), on a refusal
    the page says why, with the number as it was typed still in its field."""
    outcome = attempt(db, action, AuditedAs(session.login, what, session.source_ip), keep_on_refusal=_counted)
    if isinstance(outcome, GatewayError):
        message = translate(language_of(request), refusal_key(outcome), detail=outcome.message)
        context = _context(request, db, session)
        return refused_page(request, "voice_phone.html", outcome, form, message=message, **context)
    return RedirectResponse(PAGE, status_code=303)


@page_router.get(PAGE, response_class=HTMLResponse)
def phone_page(request: Request, session: AgentSession, db: DbSession) -> HTMLResponse:
    return render(request, "voice_phone.html", **_context(request, db, session))


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
        form,
        "voice.number.add",
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
        form,
        "voice.number.confirm",
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
        form,
        "voice.number.remove",
        lambda: numbers.remove_number(db, session.person_id, number_id, actor=session.login, now=clock()),
    )


@page_router.post(f"{PAGE}/ready")
def ready(
    request: Request, session: AgentSession, form: CheckedForm, db: DbSession, clock: ClockDep, voice: VoiceSettingsDep
) -> Response:
    wanted = form.get("ready") == "true"
    return _act(request, db, session, form, "voice.ready", lambda: set_ready(db, session, wanted, voice, now=clock()))


@page_router.post(f"{PAGE}/hr-number")
def use_hr_number(
    request: Request, session: AgentSession, form: CheckedForm, db: DbSession, clock: ClockDep, voice: VoiceSettingsDep
) -> Response:
    """Take the number HR vetted into the list without a texted code (the way on when no SMS can be sent)."""

    def adopt() -> object:
        approved = _vetted_number(request, db, session)
        if approved is None:
            raise NotFound("HR has approved no number for you", key="voice_no_hr_number")
        return numbers.adopt_vetted_number(
            db, session.person_id, session.login, approved, voice, actor=session.login, now=clock()
        )

    return _act(request, db, session, form, "voice.number.adopt_vetted", adopt)
