"""Alerts (list, acknowledge) and surge call-in (standby agents, call-in, who came online)."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session
from starlette.datastructures import FormData

from gateway.db import keep_refusal
from gateway.deps import ClockDep, DbSession, RowId
from gateway.errors import GatewayError, NotFound
from gateway.sessions.client_cert import client_address
from gateway.sessions.deps import CheckedForm, SupervisorSession
from gateway.supervision.alerts import acknowledge, recent_alerts
from gateway.supervision.deps import SupervisionSettingsDep
from gateway.supervision.scope import supervisor_scope
from gateway.supervision.surge import (
    call_in,
    call_in_status,
    latest_call_ins,
    remove_standby,
    set_standby,
    standby_agents,
)
from gateway.web.forms import AuditedAs, attempt, refused_page
from gateway.web.pages import render

router = APIRouter(tags=["supervision"])


@router.get("/supervision/alerts", response_class=HTMLResponse)
def alerts_page(request: Request, session: SupervisorSession, db: DbSession) -> HTMLResponse:
    return render(request, "supervision_alerts.html", alerts=recent_alerts(db, supervisor_scope(db, session)))


@router.post("/supervision/alerts/{alert_id}/ack")
def acknowledge_alert(
    request: Request, alert_id: RowId, session: SupervisorSession, form: CheckedForm, db: DbSession, clock: ClockDep
) -> Response:
    source = client_address(request)
    try:
        acknowledge(db, alert_id, scope=supervisor_scope(db, session), supervisor=session.login, source=source,
                    now=clock())  # fmt: skip
    except NotFound:
        keep_refusal(db)
        raise
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
    """A typo'd login, an address that is not one: refused on the page, with what was typed kept."""
    source = client_address(request)
    login = str(form.get("login", "")).strip()
    outcome = attempt(
        db,
        lambda: set_standby(
            db,
            login,
            str(form.get("email", "")).strip(),
            str(form.get("phone", "")).strip(),
            supervisor=session.login,
            source=source,
            now=clock(),
            directory=request.app.state.login_services.directory,
        ),
        AuditedAs(session.login, "supervision.standby.set", source, login),
    )
    if isinstance(outcome, GatewayError):
        return _refused(request, db, outcome, form)
    return RedirectResponse("/supervision/surge", status_code=303)


def _refused(request: Request, db: Session, error: GatewayError, form: FormData) -> HTMLResponse:
    context: dict[str, Any] = {"standby": standby_agents(db), "status": None, "call_ins": latest_call_ins(db)}
    return refused_page(request, "supervision_surge.html", error, form, **context)


@router.post("/supervision/standby/{login}/remove")
def drop_standby(
    request: Request, login: str, session: SupervisorSession, form: CheckedForm, db: DbSession, clock: ClockDep
) -> Response:
    source = client_address(request)
    remove_standby(db, login, supervisor=session.login, source=source, now=clock())
    return RedirectResponse("/supervision/surge", status_code=303)


@router.post("/supervision/call-in")
def start_call_in(
    request: Request,
    session: SupervisorSession,
    form: CheckedForm,
    db: DbSession,
    settings: SupervisionSettingsDep,
    clock: ClockDep,
) -> Response:
    message = str(form.get("message", "")).strip() or "Please log in to the SOHO Gateway portal now."
    source = client_address(request)
    outcome = attempt(
        db,
        lambda: call_in(request.app.state.engine, session.login, message, settings, clock()),
        AuditedAs(session.login, "supervision.call_in", source),
    )
    if isinstance(outcome, GatewayError):
        return _refused(request, db, outcome, form)
    return RedirectResponse(f"/supervision/surge?call_in_id={outcome}", status_code=303)
