"""Alerts (list, acknowledge) and surge call-in (standby agents, call-in, who came online)."""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway.deps import ClockDep, DbSession, RowId
from gateway.sessions.client_cert import client_origin
from gateway.sessions.deps import CheckedForm, SupervisorSession
from gateway.supervision.alerts import acknowledge, recent_alerts
from gateway.supervision.deps import SupervisionSettingsDep
from gateway.supervision.surge import (
    call_in,
    call_in_status,
    latest_call_ins,
    remove_standby,
    set_standby,
    standby_agents,
)
from gateway.web.pages import render

router = APIRouter(tags=["supervision"])


@router.get("/supervision/alerts", response_class=HTMLResponse)
def alerts_page(request: Request, session: SupervisorSession, db: DbSession) -> HTMLResponse:
    return render(request, "supervision_alerts.html", alerts=recent_alerts(db))


@router.post("/supervision/alerts/{alert_id}/ack")
def acknowledge_alert(
    request: Request, alert_id: RowId, session: SupervisorSession, form: CheckedForm, db: DbSession, clock: ClockDep
) -> Response:
    source = client_origin(request, request.app.state.settings.portal).address
    acknowledge(db, alert_id, supervisor=session.login, source=source, now=clock())
    return RedirectResponse("/supervision/alerts", status_code=303)


@router.get("/supervision/surge", response_class=HTMLResponse)
def surge_page(
    request: Request, session: SupervisorSession, db: DbSession, call_in_id: int | None = None
) -> HTMLResponse:
    status = call_in_status(db, call_in_id) if call_in_id is not None else None
    return render(
        request, "supervision_surge.html", standby=standby_agents(db), status=status, call_ins=latest_call_ins(db)
    )


@router.post("/supervision/standby")
def add_standby(
    request: Request, session: SupervisorSession, form: CheckedForm, db: DbSession, clock: ClockDep
) -> Response:
    set_standby(
        db,
        str(form.get("login", "")).strip(),
        str(form.get("email", "")),
        str(form.get("phone", "")),
        supervisor=session.login,
        source=client_origin(request, request.app.state.settings.portal).address,
        now=clock(),
    )
    return RedirectResponse("/supervision/surge", status_code=303)


@router.post("/supervision/standby/{login}/remove")
def drop_standby(
    request: Request, login: str, session: SupervisorSession, form: CheckedForm, db: DbSession, clock: ClockDep
) -> Response:
    source = client_origin(request, request.app.state.settings.portal).address
    remove_standby(db, login, supervisor=session.login, source=source, now=clock())
    return RedirectResponse("/supervision/surge", status_code=303)


@router.post("/supervision/call-in")
def start_call_in(
    request: Request, session: SupervisorSession, form: CheckedForm, settings: SupervisionSettingsDep, clock: ClockDep
) -> Response:
    message = str(form.get("message", "")).strip() or "Please log in to the SOHO Gateway portal now."
    call_in_id = call_in(request.app.state.engine, session.login, message, settings, clock())
    return RedirectResponse(f"/supervision/surge?call_in_id={call_in_id}", status_code=303)
