"""The role landing pages and the language switch. Each page reads its data through its domain's services."""

from datetime import datetime
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import text
from sqlmodel import Session

from gateway.db import keep_done
from gateway.deps import ClockDep, DbSession
from gateway.pki.service import REVOCATION_REASONS, list_certificates
from gateway.policies.service import current_version, effective_policy
from gateway.seats.routes import seat_page
from gateway.seats.service import live_leases
from gateway.seats.viewer_assets import seat_viewer
from gateway.sessions.deps import (
    SESSION_COOKIE,
    AgentSession,
    HrSession,
    SecurityAdminSession,
    SupervisorSession,
)
from gateway.sessions.models import HomeSession
from gateway.sessions.service import landing_page, live_sessions, policy_groups, session_for_token
from gateway.web.i18n import LANGUAGES
from gateway.web.pages import LANGUAGE_COOKIE, render

router = APIRouter(tags=["pages"])


def land_signed_in(request: Request, db: Session, session: HomeSession, now: datetime) -> Response:
    """The answer to a completed sign-in (`sessions.routes.SignedIn`): a redirect straight to the person's page, or,
    for an agent whose policy publishes exactly one app when ``seats.open_only_app`` is on, that app's seat page.

    Landing on the app launches it in the sign-in's own POST, which the sign-in form's CSRF check already guards: no
    GET ever launches a seat. Without a seat broker on this node (a portal that serves no seats) the person lands on
    the workspace page as usual."""
    page = landing_page(session)
    broker = getattr(request.app.state, "seat_broker", None)
    if page == "/agent" and broker is not None and broker.settings.open_only_app:
        apps = effective_policy(db, policy_groups(session), now).apps
        if len(apps) == 1:
            keep_done(db)  # the sign-in's rows and locks, before a seat may take a cold start
            return seat_page(request, db, session, apps[0].id, now, shown_as=page)
    return RedirectResponse(page, status_code=303)


@router.get("/")
def home(request: Request, db: DbSession, clock: ClockDep) -> Response:
    session = session_for_token(db, request.cookies.get(SESSION_COOKIE), clock())
    active = session if session is not None and session.state == "active" else None
    return RedirectResponse(landing_page(active), status_code=303)


def _same_site_path(referer: str | None, host: str | None) -> str:
    """Back to the page the switch was clicked on — only a page of this site, never another site (open redirect).

    The path must start with exactly one ``/``: browsers read ``//evil.example`` and ``/\\evil.example`` in a
    Location header as another host, so a referer of ``https://us//evil.example/`` would otherwise leave the site.
    """
    parts = urlsplit(referer or "")
    if not parts.netloc or parts.netloc != host or not parts.path.startswith("/") or parts.path[1:2] in ("/", "\\"):
        return "/"
    return parts.path + (f"?{parts.query}" if parts.query else "")


@router.get("/lang/{language}")
def switch_language(language: str, request: Request) -> Response:
    back = _same_site_path(request.headers.get("referer"), request.headers.get("host"))
    response = RedirectResponse(back, status_code=303)
    if language in LANGUAGES:
        response.set_cookie(LANGUAGE_COOKIE, language, samesite="lax", max_age=365 * 86400)
    return response


@router.get("/agent", response_class=HTMLResponse)
def agent_page(request: Request, session: AgentSession, db: DbSession, clock: ClockDep) -> HTMLResponse:
    return render(
        request,
        "agent.html",
        apps=effective_policy(db, policy_groups(session), clock()).apps,
        since=session.created_at,
        until=session.expires_at,
        seat_modules=seat_viewer(request).page_modules,
    )


@router.get("/supervisor", response_class=HTMLResponse)
def supervisor_page(request: Request, session: SupervisorSession, db: DbSession) -> HTMLResponse:
    agents = [s for s in live_sessions(db) if "agent" in s.role_set]
    return render(request, "supervisor.html", live_agents=len(agents))


@router.get("/security-admin", response_class=HTMLResponse)
def security_admin_page(
    request: Request, session: SecurityAdminSession, db: DbSession, clock: ClockDep
) -> HTMLResponse:
    version = current_version(db)
    return render(
        request,
        "security_admin.html",
        policy_version=version.version if version else None,
        certificates=list_certificates(db, now=clock())[-50:],
        now=clock(),
        new_serial=request.query_params.get("serial", ""),
        revocation_reasons=REVOCATION_REASONS,
    )


@router.get("/hr", response_class=HTMLResponse)
def hr_page(request: Request, session: HrSession) -> HTMLResponse:
    return render(request, "hr.html")


@router.get("/healthz")
def health(request: Request, db: DbSession) -> dict[str, str]:
    db.execute(text("SELECT 1"))
    authority_ready = request.app.state.authority is not None
    return {
        "status": "ok",
        "node": request.app.state.settings.node_name,
        "ca": "ready" if authority_ready else "not ready",
    }


@router.get("/security-admin/sessions", response_class=HTMLResponse)
def sessions_page(request: Request, admin: SecurityAdminSession, db: DbSession) -> HTMLResponse:
    """Who is on: last activity, the seat each holds, and which row is the admin's own (ending it signs them out)."""
    seats: dict[str, list[str]] = {}
    for lease in live_leases(db):
        seats.setdefault(lease.session_id, []).append(lease.app_id)
    return render(request, "sessions.html", live=live_sessions(db), seats=seats)
