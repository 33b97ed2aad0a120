"""The home agent's side: their work-state control and the bulletins; supervisors post bulletins."""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway.deps import ClockDep, DbSession
from gateway.sessions.client_cert import client_origin
from gateway.sessions.deps import AgentSession, CheckedForm, SupervisorSession
from gateway.supervision.bulletins import current_bulletins, post_bulletin
from gateway.supervision.monitoring import watchers_told
from gateway.supervision.state import BREAK_REASONS, current_state, parse_status, set_work_state
from gateway.web.pages import render

router = APIRouter(tags=["supervision"])


@router.get("/agent/work-state", response_class=HTMLResponse)
def work_state_page(request: Request, session: AgentSession, db: DbSession, clock: ClockDep) -> HTMLResponse:
    return render(
        request,
        "supervision_agent.html",
        current=current_state(db, session.id),
        break_reasons=BREAK_REASONS,
        watchers=watchers_told(db, session.id),
        bulletins=current_bulletins(db, clock()),
    )


@router.post("/agent/work-state")
def change_work_state(session: AgentSession, form: CheckedForm, db: DbSession, clock: ClockDep) -> Response:
    status, reason = parse_status(str(form.get("state", "")), str(form.get("reason", "")))
    set_work_state(db, session, status, reason, source="portal", now=clock())
    return RedirectResponse("/agent/work-state", status_code=303)


@router.get("/agent/bulletins", response_class=HTMLResponse)
def agent_bulletins(request: Request, session: AgentSession, db: DbSession, clock: ClockDep) -> HTMLResponse:
    return render(request, "supervision_bulletins_agent.html", bulletins=current_bulletins(db, clock()))


@router.get("/supervision/bulletins", response_class=HTMLResponse)
def bulletins_page(request: Request, session: SupervisorSession, db: DbSession, clock: ClockDep) -> HTMLResponse:
    return render(request, "supervision_bulletins.html", bulletins=current_bulletins(db, clock()))


@router.post("/supervision/bulletins")
def post_bulletin_form(
    request: Request, session: SupervisorSession, form: CheckedForm, db: DbSession, clock: ClockDep
) -> Response:
    hours = str(form.get("valid_hours", "")).strip()
    post_bulletin(
        db,
        kind=str(form.get("kind", "bulletin")),
        title=str(form.get("title", "")),
        body=str(form.get("body", "")),
        author=session.login,
        now=clock(),
        valid_hours=float(hours) if hours.replace(".", "", 1).isdigit() else None,
        source=client_origin(request, request.app.state.settings.portal).address,
    )
    return RedirectResponse("/supervision/bulletins", status_code=303)
