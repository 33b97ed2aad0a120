"""The applicant's pages: apply, see the status of their own application, withdraw it."""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway.deps import ClockDep, DbSession
from gateway.enrollment.decisions import close
from gateway.enrollment.deps import EnrollmentSettingsDep, HandOffDep
from gateway.enrollment.models import ApplicationState
from gateway.enrollment.service import latest_application, start_application
from gateway.errors import NotFound
from gateway.sessions.deps import AgentSession, CheckedForm
from gateway.web.pages import render

router = APIRouter(tags=["enrollment"])


@router.get("/enrollment", response_class=HTMLResponse)
def my_status(request: Request, session: AgentSession, db: DbSession, settings: EnrollmentSettingsDep) -> HTMLResponse:
    """Only the state and stage of the person's own application: no notes, no evidence, nobody else's."""
    application = latest_application(db, session.login)
    return render(
        request,
        "enrollment_status.html",
        application=application,
        stages=settings.stages,
        can_apply=application is None or application.state not in (ApplicationState.OPEN, ApplicationState.APPROVED),
    )


@router.post("/enrollment/apply")
def apply(
    session: AgentSession,
    form: CheckedForm,
    db: DbSession,
    clock: ClockDep,
    settings: EnrollmentSettingsDep,
    handoff: HandOffDep,
) -> Response:
    start_application(
        db,
        handoff,
        session.login,
        callback_number=str(form.get("callback_number", "")),
        settings=settings,
        actor=session.login,
        now=clock(),
    )
    return RedirectResponse("/enrollment", status_code=303)


@router.post("/enrollment/withdraw")
def withdraw(session: AgentSession, form: CheckedForm, db: DbSession, clock: ClockDep, handoff: HandOffDep) -> Response:
    application = latest_application(db, session.login)
    if application is None:
        raise NotFound("you have no application to withdraw")
    reason = str(form.get("reason", "")).strip() or "withdrawn by the applicant"
    close(db, application, ApplicationState.WITHDRAWN, reason, handoff=handoff, actor=session.login, now=clock())
    return RedirectResponse("/enrollment", status_code=303)
