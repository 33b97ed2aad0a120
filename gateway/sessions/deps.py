"""Who is asking: the current home session from the cookie, role checks and CSRF checks for form posts."""

import hmac
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from gateway.audit.service import record
from gateway.db import keep_refusal
from gateway.deps import ClockDep, DbSession
from gateway.errors import Forbidden
from gateway.sessions.client_cert import client_address
from gateway.sessions.errors import CsrfRefused, LoginFormOnly, LoginRequired
from gateway.sessions.models import HomeSession, SessionState
from gateway.sessions.service import ended_reason_for_token, session_for_token, touch

SESSION_COOKIE = "sohogw_session"
LOGIN_CSRF_COOKIE = "sohogw_login_csrf"


def _session(request: Request, db: DbSession, clock: ClockDep, states: tuple[SessionState, ...]) -> HomeSession:
    token = request.cookies.get(SESSION_COOKIE)
    session = session_for_token(db, token, clock())
    if session is None or session.state not in states:
        ended = ended_reason_for_token(db, token)
        keep_refusal(db)  # the idle/maximum-time ending session_for_token just wrote, and its audit row
        raise LoginRequired("sign in first", ended)
    touch(db, session, clock())
    # Pages (error pages too) render the person from a detached copy: an error rolls the request's transaction
    # back, which expires the ORM row, and reading an expired row after its session closed fails.
    request.state.home_session = HomeSession.model_validate(session.model_dump())
    return session


def _current(request: Request, db: DbSession, clock: ClockDep) -> HomeSession:
    return _session(request, db, clock, (SessionState.ACTIVE,))


def _pending_second_factor(request: Request, db: DbSession, clock: ClockDep) -> HomeSession:
    return _session(request, db, clock, (SessionState.PENDING_SECOND_FACTOR,))


CurrentSession = Annotated[HomeSession, Depends(_current)]
PendingSecondFactor = Annotated[HomeSession, Depends(_pending_second_factor)]


def require_role(role: str) -> Callable[..., HomeSession]:
    def check(session: CurrentSession, request: Request, db: DbSession, clock: ClockDep) -> HomeSession:
        if role not in session.role_set:
            audit_refusal(db, request, clock, session.login, f"role_{role}_missing")
            raise Forbidden(f"this page needs the {role} role")
        return session

    return check


AgentSession = Annotated[HomeSession, Depends(require_role("agent"))]
SupervisorSession = Annotated[HomeSession, Depends(require_role("supervisor"))]
SecurityAdminSession = Annotated[HomeSession, Depends(require_role("security_admin"))]
HrSession = Annotated[HomeSession, Depends(require_role("hr"))]


def audit_refusal(db: DbSession, request: Request, clock: ClockDep, actor: str, outcome: str) -> None:
    """Write the refusal's audit row and keep it (`keep_refusal`): the error raised next rolls the request back."""
    record(
        db,
        actor=actor[:255],
        source=client_address(request),
        action="request.refused",
        outcome=outcome,
        target=f"{request.method} {request.url.path}"[:255],
        clock=clock,
    )
    keep_refusal(db)


def _same(expected: str | None, given: Any) -> bool:
    if not expected or not isinstance(given, str):
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


async def _session_form(request: Request, db: DbSession, clock: ClockDep) -> FormData:
    """The posted form, if its CSRF field matches the session's secret (checked after the session dependency)."""
    form = await request.form()
    session: HomeSession | None = getattr(request.state, "home_session", None)
    if session is None or not _same(session.csrf_token, form.get("csrf")):
        actor = session.login if session is not None else "unknown"
        await run_in_threadpool(audit_refusal, db, request, clock, actor, "csrf")
        raise CsrfRefused("the form expired; reload the page and try again")
    return form


def _refuse_other_login_bodies(request: Request, db: DbSession, clock: ClockDep) -> None:
    """``/login`` takes the sign-in page's URL-encoded form and nothing else: a multipart body would make Starlette
    spool its files to disk for an unauthenticated caller, and JSON is no form a person fills in."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        return
    record(
        db,
        actor="unknown",
        source=client_address(request),
        action="session.login",
        outcome="login_form_only",
        detail={"content_type": kind[:100]},
        clock=clock,
    )
    keep_refusal(db)
    raise LoginFormOnly("sign in with the portal's sign-in page (a URL-encoded form)")


async def _login_form(
    request: Request, db: DbSession, clock: ClockDep, _: Annotated[None, Depends(_refuse_other_login_bodies)]
) -> FormData:
    """Before sign-in there is no session: the form's token must match the one set in a cookie with the page."""
    form = await request.form()
    if not _same(request.cookies.get(LOGIN_CSRF_COOKIE), form.get("csrf")):
        await run_in_threadpool(audit_refusal, db, request, clock, "unknown", "csrf")
        raise CsrfRefused("the form expired; reload the page and try again")
    return form


def _header_csrf(request: Request, session: CurrentSession, db: DbSession, clock: ClockDep) -> HomeSession:
    """Script (JSON) requests that change state carry the session's CSRF secret in ``X-CSRF-Token``."""
    if not _same(session.csrf_token, request.headers.get("x-csrf-token")):
        audit_refusal(db, request, clock, session.login, "csrf")
        raise CsrfRefused("the page expired; reload it and try again")
    return session


ScriptCsrf = Annotated[HomeSession, Depends(_header_csrf)]
CheckedForm = Annotated[FormData, Depends(_session_form)]
LoginForm = Annotated[FormData, Depends(_login_form)]
