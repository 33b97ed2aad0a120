"""HR's pages: the list with filters, one application, decide, override, evidence, close, re-check, suspend."""

from enum import StrEnum
from typing import Annotated, TypeVar

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData, UploadFile

from gateway.deps import ClockDep, DbSession
from gateway.enrollment import decisions, service
from gateway.enrollment import evidence as files
from gateway.enrollment.deps import EnrollmentSettingsDep, HandOffDep
from gateway.enrollment.errors import InvalidApplication
from gateway.enrollment.models import ApplicationState, DecisionOutcome
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


def _back(application_id: int) -> Response:
    return RedirectResponse(f"/hr/enrollment/{application_id}", status_code=303)


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
    application_id: int,
    hr: HrSession,
    db: DbSession,
    clock: ClockDep,
    settings: EnrollmentSettingsDep,
) -> HTMLResponse:
    detail = application_detail(db, application_id, actor=hr.login, now=clock())
    return render(request, "enrollment_application.html", detail=detail, stages=settings.stages)


@router.post("/hr/enrollment/{application_id}/decide")
def decide(
    application_id: int,
    hr: HrSession,
    form: CheckedForm,
    db: DbSession,
    clock: ClockDep,
    settings: EnrollmentSettingsDep,
    handoff: HandOffDep,
) -> Response:
    """The decision and its optional evidence file are one step: both are written or neither."""
    application = service.get_application(db, application_id)
    stage = _text(form, "stage")
    upload = form.get("evidence")
    if isinstance(upload, UploadFile) and upload.filename:
        content = upload.file.read(settings.evidence_max_bytes + 1)
        files.add_evidence(
            db, application, stage, upload.filename, content, settings=settings, actor=hr.login, now=clock()
        )
    decisions.decide(
        db,
        application,
        stage,
        _choice(DecisionOutcome, _text(form, "outcome"), "outcome"),
        _text(form, "notes"),
        handoff=handoff,
        settings=settings,
        actor=hr.login,
        now=clock(),
        callback_number=_text(form, "callback_number"),
    )
    return _back(application_id)


@router.post("/hr/enrollment/{application_id}/override")
def override(
    application_id: int,
    hr: HrSession,
    form: CheckedForm,
    db: DbSession,
    clock: ClockDep,
    settings: EnrollmentSettingsDep,
    handoff: HandOffDep,
) -> Response:
    application = service.get_application(db, application_id)
    decisions.override(
        db,
        application,
        _text(form, "target"),
        _text(form, "reason"),
        handoff=handoff,
        settings=settings,
        actor=hr.login,
        now=clock(),
    )
    return _back(application_id)


@router.post("/hr/enrollment/{application_id}/close")
def close(
    application_id: int, hr: HrSession, form: CheckedForm, db: DbSession, clock: ClockDep, handoff: HandOffDep
) -> Response:
    """Reject, withdraw, or suspend an approved seat."""
    application = service.get_application(db, application_id)
    state = _choice(ApplicationState, _text(form, "state"), "state")
    decisions.close(db, application, state, _text(form, "reason"), handoff=handoff, actor=hr.login, now=clock())
    return _back(application_id)


@router.post("/hr/enrollment/{application_id}/recheck")
def recheck(
    application_id: int,
    hr: HrSession,
    form: CheckedForm,
    db: DbSession,
    clock: ClockDep,
    settings: EnrollmentSettingsDep,
) -> Response:
    application = service.get_application(db, application_id)
    decisions.confirm_recheck(db, application, _text(form, "notes"), settings=settings, actor=hr.login, now=clock())
    return _back(application_id)
