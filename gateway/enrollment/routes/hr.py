"""HR's pages: the list with filters, one application, decide, override, evidence, close, re-check, suspend."""

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session
from starlette.datastructures import FormData, UploadFile

from gateway.clock import Clock
from gateway.deps import ClockDep, DbSession, RowId
from gateway.enrollment import decisions, service
from gateway.enrollment import evidence as files
from gateway.enrollment.deps import EnrollmentSettingsDep, HandOffDep
from gateway.enrollment.errors import InvalidApplication
from gateway.enrollment.models import Application, ApplicationState, DecisionOutcome
from gateway.enrollment.queries import ApplicationFilter, application_detail, list_applications
from gateway.sessions.deps import CheckedForm, HrSession
from gateway.web.pages import render

router = APIRouter(tags=["enrollment"])


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


Choice = TypeVar("Choice", bound=StrEnum)


def _choice(kind: type[Choice], value: str, what: str) -> Choice:
    try:
        return kind(value)
    except ValueError:
        raise InvalidApplication(f"{value!r} is not a known {what}") from None


def _back(application_id: RowId) -> Response:
    return RedirectResponse(f"/hr/enrollment/{application_id}", status_code=303)


@dataclass(frozen=True, slots=True)
class ApplicationAction:
    """What every HR form posted on one application brings: who acts, the checked form, the DB, the clock.

    The application itself is looked up by the route, after every dependency (sign-in, CSRF) has passed.
    """

    application_id: RowId
    actor: str
    form: FormData
    db: Session
    clock: Clock

    def application(self) -> Application:
        return service.get_application(self.db, self.application_id)

    def text(self, name: str) -> str:
        return _text(self.form, name)


def _application_action(
    application_id: RowId, hr: HrSession, form: CheckedForm, db: DbSession, clock: ClockDep
) -> ApplicationAction:
    return ApplicationAction(application_id, hr.login, form, db, clock)


HrAction = Annotated[ApplicationAction, Depends(_application_action)]


@router.get("/hr/enrollment", response_class=HTMLResponse)
def application_list(
    request: Request,
    hr: HrSession,
    db: DbSession,
    clock: ClockDep,
    settings: EnrollmentSettingsDep,
    state: Annotated[str, Query()] = "",
    stage: Annotated[str, Query()] = "",
    login: Annotated[str, Query()] = "",
    recheck_due: Annotated[bool, Query()] = False,
) -> HTMLResponse:
    wanted = ApplicationFilter(
        state=_choice(ApplicationState, state, "state") if state else None,
        stage=stage or None,
        login=login.strip() or None,
        recheck_due=recheck_due,
    )
    rows = list_applications(db, wanted, actor=hr.login, now=clock())
    return render(
        request, "enrollment_list.html", rows=rows, wanted=wanted, stages=settings.stages, states=list(ApplicationState)
    )


@router.post("/hr/enrollment/start")
def start_for(
    hr: HrSession,
    form: CheckedForm,
    db: DbSession,
    clock: ClockDep,
    settings: EnrollmentSettingsDep,
    handoff: HandOffDep,
) -> Response:
    application = service.start_application(
        db,
        handoff,
        _text(form, "login"),
        callback_number=_text(form, "callback_number"),
        settings=settings,
        actor=hr.login,
        now=clock(),
    )
    return _back(application.id or 0)


@router.get("/hr/enrollment/{application_id}", response_class=HTMLResponse)
def application_page(
    request: Request,
    application_id: RowId,
    hr: HrSession,
    db: DbSession,
    clock: ClockDep,
    settings: EnrollmentSettingsDep,
) -> HTMLResponse:
    detail = application_detail(db, application_id, actor=hr.login, now=clock())
    return render(request, "enrollment_application.html", detail=detail, stages=settings.stages)


@router.post("/hr/enrollment/{application_id}/decide")
def decide(action: HrAction, settings: EnrollmentSettingsDep, handoff: HandOffDep) -> Response:
    """The decision and its optional evidence file are one step: both are written or neither."""
    application = action.application()
    stage = action.text("stage")
    upload = action.form.get("evidence")
    if isinstance(upload, UploadFile) and upload.filename:
        content = upload.file.read(settings.evidence_max_bytes + 1)
        files.add_evidence(
            action.db,
            application,
            stage,
            upload.filename,
            content,
            settings=settings,
            actor=action.actor,
            now=action.clock(),
        )
    decisions.decide(
        action.db,
        application,
        stage,
        _choice(DecisionOutcome, action.text("outcome"), "outcome"),
        action.text("notes"),
        handoff=handoff,
        settings=settings,
        actor=action.actor,
        now=action.clock(),
        callback_number=action.text("callback_number"),
    )
    return _back(action.application_id)


@router.post("/hr/enrollment/{application_id}/override")
def override(action: HrAction, settings: EnrollmentSettingsDep, handoff: HandOffDep) -> Response:
    decisions.override(
        action.db,
        action.application(),
        action.text("target"),
        action.text("reason"),
        handoff=handoff,
        settings=settings,
        actor=action.actor,
        now=action.clock(),
    )
    return _back(action.application_id)


@router.post("/hr/enrollment/{application_id}/close")
def close(action: HrAction, handoff: HandOffDep) -> Response:
    """Reject, withdraw, or suspend an approved seat."""
    application = action.application()
    state = _choice(ApplicationState, action.text("state"), "state")
    decisions.close(
        action.db, application, state, action.text("reason"), handoff=handoff, actor=action.actor, now=action.clock()
    )
    return _back(action.application_id)


@router.post("/hr/enrollment/{application_id}/recheck")
def recheck(action: HrAction, settings: EnrollmentSettingsDep) -> Response:
    decisions.confirm_recheck(
        action.db, action.application(), action.text("notes"), settings=settings, actor=action.actor, now=action.clock()
    )
    return _back(action.application_id)
