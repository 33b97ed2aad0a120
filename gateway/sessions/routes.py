"""Sign in, second factor, sign out, and the security admin's view of live sessions."""

import secrets
from collections.abc import Callable
from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from gateway.deps import ClockDep, DbSession
from gateway.errors import Forbidden, NotFound
from gateway.sessions import enrolment_codes, totp
from gateway.sessions.client_cert import client_origin
from gateway.sessions.deps import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    CheckedForm,
    CurrentSession,
    LoginForm,
    PendingSecondFactor,
    SecurityAdminSession,
)
from gateway.sessions.errors import (
    EnrolmentCodeRefused,
    EnrolmentCodeRequired,
    LoginFailed,
    SecondFactorRefused,
    TooManyAttempts,
)
from gateway.sessions.login import LoginRequest, complete_second_factor, login
from gateway.sessions.models import EndReason, HomeSession
from gateway.sessions.service import end_session, get_session
from gateway.web.confirm import ask_first, done
from gateway.web.i18n import translate
from gateway.web.pages import language_of, reason_message, render

router = APIRouter(tags=["sessions"])

SignedIn = Callable[[Request, Session, HomeSession, datetime], Response]
"""The answer to a completed sign-in, handed down by the app as ``app.state.land_signed_in``: the page a person lands
on may belong to a domain above this one (an agent's only app opens at once, `gateway.web.routes.land_signed_in`)."""


def _land(request: Request, db: Session, session: HomeSession, now: datetime) -> Response:
    land: SignedIn = request.app.state.land_signed_in
    return land(request, db, session, now)


def _set_session_cookie(response: Response, request: Request, token: str) -> None:
    secure = request.app.state.settings.public_url.startswith("https://")
    response.set_cookie(SESSION_COOKIE, token, httponly=True, secure=secure, samesite="lax", path="/")


def _login_page(request: Request, status_code: int = 200, **context: object) -> HTMLResponse:
    origin = client_origin(request, request.app.state.settings.portal)
    certificate = origin.certificate
    name = certificate.subject.rfc4514_string() if certificate is not None else None
    csrf = secrets.token_urlsafe(24)
    preloads = request.app.state.sign_in_preloads  # modules a later page needs, handed down by the app
    response = render(
        request, "login.html", status_code, csrf=csrf, certificate_name=name, preloads=preloads, **context
    )
    secure = request.app.state.settings.public_url.startswith("https://")
    response.set_cookie(LOGIN_CSRF_COOKIE, csrf, httponly=True, secure=secure, samesite="strict", path="/login")
    return response


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, ended: str = "") -> HTMLResponse:
    """The sign-in form; after a session ended (``?ended=<reason>``, set by the redirect), why it ended. Only the
    known reasons are shown, each in the person's language: the query string never reaches the page as text."""
    if ended in {reason.value for reason in EndReason} and ended != EndReason.LOGOUT:
        # Only why it ended: the certificate line is for a first sign-in, and beside "an administrator ended your
        # session" it reads as if the certificate were the problem.
        return _login_page(request, error=reason_message(request, f"session_ended.{ended}", ""), session_ended=ended)
    return _login_page(request)


@router.post("/login", response_model=None)
def login_submit(request: Request, form: LoginForm, db: DbSession, clock: ClockDep) -> Response:
    """A refused login renders the form again with the reason; the refusal's audit and throttle rows still commit."""
    origin = client_origin(request, request.app.state.settings.portal)
    attempt = LoginRequest(
        login=str(form.get("username", "")).strip(),
        password=str(form.get("password", "")),
        source_ip=origin.address,
        user_agent=request.headers.get("user-agent", ""),
        client_cert=origin.certificate,
    )
    try:
        result = login(db, request.app.state.login_services, attempt, clock())
    except LoginFailed as error:
        message = reason_message(request, error.reason, error.message, detail=error.message, **error.values)
        return _login_page(request, error.status_code, error=message, username=attempt.login)
    if result.needs_second_factor:
        response: Response = RedirectResponse("/login/second-factor", status_code=303)
    else:
        response = _land(request, db, result.session, clock())
    _set_session_cookie(response, request, result.token)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


def _second_factor_page(
    request: Request, session: HomeSession, db: DbSession, clock: ClockDep, status_code: int = 200, error: str = ""
) -> HTMLResponse:
    """The code prompt; until the person has proven an enrolment, the QR code to enrol with too (for a privileged
    person only after an enrolment code was redeemed by this session)."""
    if totp.is_enrolled(db, session.person_id):
        return render(request, "second_factor.html", status_code, qr_svg=None, error=error or None)
    try:
        secret = totp.enrolment(db, session, clock())
    except EnrolmentCodeRequired:
        return render(
            request, "second_factor.html", status_code, qr_svg=None, need_enrolment_code=True, error=error or None
        )
    return render(
        request,
        "second_factor.html",
        status_code,
        qr_svg=totp.provisioning_qr_svg(secret),
        otpauth_uri=totp.provisioning_uri(secret),
        secret=secret.secret,
        error=error or None,
    )


@router.get("/login/second-factor", response_class=HTMLResponse)
def second_factor_page(request: Request, session: PendingSecondFactor, db: DbSession, clock: ClockDep) -> HTMLResponse:
    return _second_factor_page(request, session, db, clock)


@router.post("/login/second-factor", response_model=None)
def second_factor_submit(
    request: Request, session: PendingSecondFactor, form: CheckedForm, db: DbSession, clock: ClockDep
) -> Response:
    """A code (or a recovery code) activates the session; a fresh enrolment first shows the "enrolled" page with
    the recovery codes, once, before the person goes on."""
    try:
        passed = complete_second_factor(
            db, session, str(form.get("code", "")), limits=request.app.state.login_services.limits, now=clock()
        )
    except (SecondFactorRefused, TooManyAttempts) as error:
        message = reason_message(request, error.reason, error.message)
        return _second_factor_page(request, session, db, clock, error.status_code, message)
    if passed.recovery_codes:
        response: Response = render(request, "second_factor_enrolled.html", recovery_codes=passed.recovery_codes)
        response.headers["Cache-Control"] = "no-store"  # the codes are shown once and must not stay in a cache
    else:
        response = _land(request, db, session, clock())
    _set_session_cookie(response, request, passed.token)
    return response


@router.post("/login/second-factor/enrolment-code", response_model=None)
def enrolment_code_submit(
    request: Request, session: PendingSecondFactor, form: CheckedForm, db: DbSession, clock: ClockDep
) -> Response:
    """A privileged person's enrolment code: redeemed, it unlocks the QR code for this session only."""
    limits = request.app.state.login_services.limits
    try:
        enrolment_codes.redeem(db, session, str(form.get("enrolment_code", "")), limits=limits, now=clock())
    except (EnrolmentCodeRefused, TooManyAttempts) as error:
        message = reason_message(request, error.reason, error.message)
        return _second_factor_page(request, session, db, clock, error.status_code, message)
    return RedirectResponse("/login/second-factor", status_code=303)


@router.post("/logout")
def logout(request: Request, session: CurrentSession, form: CheckedForm, db: DbSession, clock: ClockDep) -> Response:
    end_session(db, session, EndReason.LOGOUT, actor=session.login, now=clock(), source=session.source_ip)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/security-admin/second-factor", response_class=HTMLResponse)
def enrolment_codes_page(request: Request, admin: SecurityAdminSession) -> HTMLResponse:
    return render(request, "enrolment_codes.html")


@router.post("/security-admin/second-factor", response_class=HTMLResponse)
def issue_enrolment_code(
    request: Request, admin: SecurityAdminSession, form: CheckedForm, db: DbSession, clock: ClockDep
) -> HTMLResponse:
    """Issue a person's enrolment code (with "reset", forget their second factor first); shown once."""
    account = enrolment_codes.find_account(request.app.state.login_services.directory, str(form.get("login", "")))
    try:
        code = enrolment_codes.issue(
            db,
            account,
            issued_by=admin.login,
            issuer_person_id=admin.person_id,
            now=clock(),
            reset=form.get("reset") == "on",
            source=admin.source_ip,
        )
    except Forbidden as refused:  # rendered, not raised: the refusal's audit row commits
        return render(request, "enrolment_codes.html", refused.status_code, error=refused.message)
    return render(request, "enrolment_codes.html", code=code, for_login=account.name)


@router.post("/security-admin/sessions/{session_id}/end")
def end_now(
    request: Request, session_id: str, admin: SecurityAdminSession, form: CheckedForm, db: DbSession, clock: ClockDep
) -> Response:
    """End a person's session now: asked first (``ask_first``), then the page says it was done."""
    target = get_session(db, session_id)
    if target is None:
        raise NotFound("no such session")
    question = translate(
        language_of(request), "confirm.end_session", name=target.display_name or target.login, login=target.login
    )
    label = translate(language_of(request), "sessions.end")
    if asked := ask_first(request, form, question=question, confirm_label=label, cancel="/security-admin/sessions"):
        return asked
    end_session(db, target, EndReason.ADMIN, actor=admin.login, now=clock(), source=admin.source_ip)
    return done("/security-admin/sessions", "session_ended")
