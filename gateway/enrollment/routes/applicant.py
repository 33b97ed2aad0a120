"""The applicant's pages: apply, see the status of their own application, withdraw it."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway.deps import ClockDep, DbSession
from gateway.enrollment.decisions import close
from gateway.enrollment.deps import EnrollmentSettingsDep, HandOffDep
from gateway.enrollment.models import ApplicationState
from gateway.enrollment.service import latest_application, start_application, works_from_home
from gateway.errors import GatewayError, NotFound
from gateway.sessions.deps import AgentSession, CheckedForm
from gateway.web.confirm import ask_first, done
from gateway.web.forms import AuditedAs, attempt, refused_page
from gateway.web.i18n import translate
from gateway.web.pages import language_of, render

router = APIRouter(tags=["enrollment"])


@router.get("/enrollment", response_class=HTMLResponse)
def my_status(request: Request, session: AgentSession, db: DbSession, settings: EnrollmentSettingsDep) -> HTMLResponse:
    """Only the state and stage of the person's own application: no notes, no evidence, nobody else's."""
    application = latest_application(db, session.login)
    already_working = application is None and works_from_home(session, settings)
    return render(
        request,
        "enrollment_status.html",
        application=application,
        stages=settings.stages,
        already_working=already_working,
        can_apply=not already_working
        and (application is None or application.state not in (ApplicationState.OPEN, ApplicationState.APPROVED)),
    )


@router.post("/enrollment/apply")
def apply(
    request: Request,
    session: AgentSession,
    form: CheckedForm,
    db: DbSession,
    clock: ClockDep,
    settings: EnrollmentSettingsDep,
    handoff: HandOffDep,
) -> Response:
    """A number that is none is refused on the page, as typed."""
    outcome = attempt(
        db,
        lambda: start_application(
            db,
            handoff,
            session.login,
            callback_number=str(form.get("callback_number", "")),
            settings=settings,
            actor=session.login,
            now=clock(),
        ),
        AuditedAs(session.login, "enrollment.apply", session.source_ip),
    )
    if isinstance(outcome, GatewayError):
        application = latest_application(db, session.login)
        context: dict[str, Any] = {
            "application": application,
            "stages": settings.stages,
            "already_working": False,
            "can_apply": True,
        }
        return refused_page(request, "enrollment_status.html", outcome, form, **context)
    return RedirectResponse("/enrollment", status_code=303)


@router.post("/enrollment/withdraw")
def withdraw(
    request: Request, session: AgentSession, form: CheckedForm, db: DbSession, clock: ClockDep, handoff: HandOffDep
) -> Response:
    """The applicant withdraws their own application: asked first, since it also ends a seat it granted."""
    application = latest_application(db, session.login)
    if application is None:
        raise NotFound("you have no application to withdraw")
    language = language_of(request)
    question, label = translate(language, "confirm.withdraw_own"), translate(language, "enrollment.my.withdraw")
    if (asked := ask_first(request, form, question=question, confirm_label=label, cancel="/enrollment")) is not None:
        return asked
    reason = str(form.get("reason", "")).strip() or "withdrawn by the applicant"
    close(db, application, ApplicationState.WITHDRAWN, reason, handoff=handoff, actor=session.login, now=clock())
    return done("/enrollment", "withdrawn")
