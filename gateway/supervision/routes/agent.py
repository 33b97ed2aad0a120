"""The home agent's side: their work-state control and the bulletins; supervisors post bulletins."""

from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlmodel import Session
from starlette.datastructures import FormData

from gateway.clock import as_utc
from gateway.deps import ClockDep, DbSession, RowId
from gateway.errors import GatewayError
from gateway.sessions.client_cert import client_address
from gateway.sessions.deps import AgentSession, CheckedForm, SupervisorSession
from gateway.sessions.models import HomeSession
from gateway.supervision.bulletins import (
    PRIORITIES,
    audience_of,
    current_bulletins,
    edit_bulletin,
    post_bulletin,
    remove_bulletin,
)
from gateway.supervision.help import open_requests, request_help
from gateway.supervision.models import WorkStatus
from gateway.supervision.monitoring import watchers_told
from gateway.supervision.state import AGENT_STATES, BREAK_REASONS, current_state, parse_status, set_work_state
from gateway.web.confirm import ask_first, done
from gateway.web.forms import AuditedAs, attempt, refused_page
from gateway.web.i18n import translate
from gateway.web.pages import language_of, render

router = APIRouter(tags=["supervision"])


def _work_state_page(request: Request, session: HomeSession, db: Session, now: datetime) -> dict[str, Any]:
    return {
        "current": current_state(db, session.id),
        "break_reasons": BREAK_REASONS,
        "agent_states": [state.value for state in AGENT_STATES if state is not WorkStatus.BREAK],
        "watchers": watchers_told(db, session.id),
        "bulletins": current_bulletins(db, now, groups=audience_of(session)),
        "help_request": open_requests(db, [session.id]).get(session.id),
    }


@router.get("/agent/work-state", response_class=HTMLResponse)
def work_state_page(request: Request, session: AgentSession, db: DbSession, clock: ClockDep) -> HTMLResponse:
    return render(request, "supervision_agent.html", **_work_state_page(request, session, db, clock()))


@router.post("/agent/help")
def ask_for_help(session: AgentSession, form: CheckedForm, db: DbSession, clock: ClockDep) -> Response:
    """The agent's "Need help": a flag on the supervisors' wall until one of them answers."""
    request_help(db, session.id, "portal", clock())
    return RedirectResponse("/agent/work-state", status_code=303)


@router.post("/agent/work-state")
def change_work_state(
    request: Request, session: AgentSession, form: CheckedForm, db: DbSession, clock: ClockDep
) -> Response:
    """A refused state (on call by hand, a break without a reason) is said on the page, the choice kept."""

    def change() -> object:
        status, reason = parse_status(str(form.get("state", "")), str(form.get("reason", "")), by_agent=True)
        return set_work_state(db, session, status, reason, source="portal", now=clock())

    outcome = attempt(db, change, AuditedAs(session.login, "supervision.work_state", session.source_ip))
    if isinstance(outcome, GatewayError):
        context = _work_state_page(request, session, db, clock())
        return refused_page(request, "supervision_agent.html", outcome, form, **context)
    return RedirectResponse("/agent/work-state", status_code=303)


@router.get("/agent/status-bar")
def status_bar(request: Request, session: AgentSession, db: DbSession, clock: ClockDep) -> JSONResponse:
    """What the seat page's status bar shows, polled by it: the agent's work state since when, and the urgent
    bulletins for them. Labels come translated, so the bar needs no catalog of its own."""
    language = language_of(request)
    now = clock()
    current = current_state(db, session.id)
    status = current.status.value if current else "offline"
    reason = current.reason if current else ""
    urgent = current_bulletins(db, now, groups=audience_of(session), urgent=True)
    body = {
        "state": status,
        "label": translate(language, f"supervision.state.{status}"),
        "reason": reason,
        "reason_label": translate(language, f"supervision.break.{reason}") if reason else "",
        "since": as_utc(current.started_at).isoformat() if current else None,
        "now": now.isoformat(),
        "urgent": [{"id": item.id, "title": item.title, "body": item.body} for item in urgent],
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


@router.get("/agent/bulletins", response_class=HTMLResponse)
def agent_bulletins(request: Request, session: AgentSession, db: DbSession, clock: ClockDep) -> HTMLResponse:
    return render(request, "supervision_bulletins_agent.html", bulletins=current_bulletins(db, clock()))


@router.get("/supervision/bulletins", response_class=HTMLResponse)
def bulletins_page(request: Request, session: SupervisorSession, db: DbSession, clock: ClockDep) -> HTMLResponse:
    return render(request, "supervision_bulletins.html", **_bulletins_context(db, clock()))


def _bulletins_context(db: Session, now: datetime) -> dict[str, Any]:
    return {"bulletins": current_bulletins(db, now), "priorities": PRIORITIES, "editable": True}


def _bulletin_form(
    request: Request, session: HomeSession, form: FormData, db: Session, now: datetime, work: Callable[[], object]
) -> Response:
    """Post or edit: a refusal (no title, hours that are not hours) is said on the page, the text kept."""
    source = client_address(request)
    outcome = attempt(db, work, AuditedAs(session.login, "supervision.bulletin", source))
    if isinstance(outcome, GatewayError):
        return refused_page(request, "supervision_bulletins.html", outcome, form, **_bulletins_context(db, now))
    return done("/supervision/bulletins", "bulletin_saved")


@router.post("/supervision/bulletins")
def post_bulletin_form(
    request: Request, session: SupervisorSession, form: CheckedForm, db: DbSession, clock: ClockDep
) -> Response:
    now = clock()
    return _bulletin_form(
        request,
        session,
        form,
        db,
        now,
        lambda: post_bulletin(
            db,
            kind=str(form.get("kind", "bulletin")),
            title=str(form.get("title", "")),
            body=str(form.get("body", "")),
            author=session.login,
            now=now,
            valid_hours=str(form.get("valid_hours", "")),
            source=session.source_ip,
            priority=str(form.get("priority", "normal")),
            audience=str(form.get("audience", "")),
        ),
    )


@router.post("/supervision/bulletins/{bulletin_id}/edit")
def edit_bulletin_form(
    bulletin_id: RowId, request: Request, session: SupervisorSession, form: CheckedForm, db: DbSession, clock: ClockDep
) -> Response:
    now = clock()
    return _bulletin_form(
        request,
        session,
        form,
        db,
        now,
        lambda: edit_bulletin(
            db,
            bulletin_id,
            title=str(form.get("title", "")),
            body=str(form.get("body", "")),
            priority=str(form.get("priority", "normal")),
            audience=str(form.get("audience", "")),
            valid_hours=str(form.get("valid_hours", "")),
            editor=session.login,
            now=now,
            source=session.source_ip,
        ),
    )


@router.post("/supervision/bulletins/{bulletin_id}/remove")
def remove_bulletin_form(
    bulletin_id: RowId, request: Request, session: SupervisorSession, form: CheckedForm, db: DbSession, clock: ClockDep
) -> Response:
    """Asked first (``ask_first``), then gone from every agent's page."""
    language = language_of(request)
    question = translate(language, "confirm.remove_bulletin", title=str(form.get("title", "")) or f"#{bulletin_id}")
    label = translate(language, "supervision.bulletins.remove")
    if asked := ask_first(request, form, question=question, confirm_label=label, cancel="/supervision/bulletins"):
        return asked
    remove_bulletin(db, bulletin_id, editor=session.login, now=clock(), source=session.source_ip)
    return done("/supervision/bulletins", "bulletin_removed")
