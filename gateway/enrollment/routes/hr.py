"""HR's pages: the list with filters, one application, decide, override, evidence, close, re-check, suspend."""

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, TypeVar

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
from gateway.enrollment.settings import FINAL_STAGE, EnrollmentSettings
from gateway.errors import GatewayError
from gateway.sessions.deps import CheckedForm, HrSession
from gateway.web.confirm import ask_first, done
from gateway.web.forms import AuditedAs, attempt, refused_page
from gateway.web.i18n import translate
from gateway.web.pages import language_of, render

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
    request: Request

    def application(self) -> Application:
        return service.get_application(self.db, self.application_id)

    def text(self, name: str) -> str:
        return _text(self.form, name)

    def ask_first(self, question_key: str, label_key: str, **values: object) -> HTMLResponse | None:
        """The confirmation page unless the form was confirmed (``gateway.web.confirm``); None when it was."""
        language = language_of(self.request)
        return ask_first(
            self.request,
            self.form,
            question=translate(language, question_key, **values),
            confirm_label=translate(language, label_key),
            cancel=f"/hr/enrollment/{self.application_id}",
        )

    def done(self, key: str) -> Response:
        return done(f"/hr/enrollment/{self.application_id}", key)

    def audited(self, action: str) -> AuditedAs:
        return AuditedAs(self.actor, action, target=str(self.application_id))


def _application_action(
    request: Request, application_id: RowId, hr: HrSession, form: CheckedForm, db: DbSession, clock: ClockDep
) -> ApplicationAction:
    return ApplicationAction(application_id, hr.login, form, db, clock, request)


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
    request: Request,
    hr: HrSession,
    form: CheckedForm,
    db: DbSession,
    clock: ClockDep,
    settings: EnrollmentSettingsDep,
    handoff: HandOffDep,
) -> Response:
    """Start an application for a person; a wrong login or number is refused on the list page, as typed."""
    outcome = attempt(
        db,
        lambda: service.start_application(
            db,
            handoff,
            _text(form, "login"),
            callback_number=_text(form, "callback_number"),
            settings=settings,
            actor=hr.login,
            now=clock(),
        ),
        AuditedAs(hr.login, "enrollment.start", hr.source_ip, _text(form, "login")),
    )
    if isinstance(outcome, GatewayError):
        wanted = ApplicationFilter()
        rows = list_applications(db, wanted, actor=hr.login, now=clock())
        context: dict[str, Any] = {
            "rows": rows,
            "wanted": wanted,
            "stages": settings.stages,
            "states": list(ApplicationState),
        }
        return refused_page(request, "enrollment_list.html", outcome, form, **context)
    return _back(outcome.id or 0)


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


def _refused(action: ApplicationAction, error: GatewayError, settings: EnrollmentSettings) -> HTMLResponse:
    """The application's page again with the refusal beside the forms and HR's notes and number still typed."""
    detail = application_detail(action.db, action.application_id, actor=action.actor, now=action.clock())
    return refused_page(
        action.request, "enrollment_application.html", error, action.form, detail=detail, stages=settings.stages
    )


@router.post("/hr/enrollment/{application_id}/decide")
def decide(action: HrAction, settings: EnrollmentSettingsDep, handoff: HandOffDep) -> Response:
    """The decision and its optional evidence file are one step: both are written or neither. A decision that
    approves (passing the last stage before approval: AD groups and a certificate follow) or rejects is asked first."""
    application = action.application()
    stage = action.text("stage")
    outcome = _choice(DecisionOutcome, action.text("outcome"), "outcome")
    approves = outcome is DecisionOutcome.PASSED and _next_is_final(settings.stages, stage)
    if approves or outcome is DecisionOutcome.FAILED:
        question = "confirm.approve" if approves else "confirm.reject"
        label = "enrollment.action.approve" if approves else "enrollment.action.reject"
        if (asked := action.ask_first(question, label, login=application.login)) is not None:
            return asked
    upload = action.form.get("evidence")

    def record_decision() -> None:
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
            outcome,
            action.text("notes"),
            handoff=handoff,
            settings=settings,
            actor=action.actor,
            now=action.clock(),
            callback_number=action.text("callback_number"),
        )

    refused = attempt(action.db, record_decision, action.audited("enrollment.decide"))
    if isinstance(refused, GatewayError):
        return _refused(action, refused, settings)
    return action.done("approved" if approves else "rejected" if outcome is DecisionOutcome.FAILED else "decided")


def _next_is_final(stages: list[str], stage: str) -> bool:
    return stage in stages and stages.index(stage) + 1 < len(stages) and stages[stages.index(stage) + 1] == FINAL_STAGE


@router.post("/hr/enrollment/{application_id}/override")
def override(action: HrAction, settings: EnrollmentSettingsDep, handoff: HandOffDep) -> Response:
    """Skip forward with a reason; skipping to approval is asked first, as approving is."""
    approves = action.text("target") == FINAL_STAGE
    if approves and (
        asked := action.ask_first("confirm.approve", "enrollment.action.approve", login=action.application().login)
    ):
        return asked
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
    return action.done("approved" if approves else "overridden")


@router.post("/hr/enrollment/{application_id}/close")
def close(action: HrAction, handoff: HandOffDep) -> Response:
    """Reject, withdraw, or suspend an approved seat: asked first, each in its own words."""
    application = action.application()
    state = _choice(ApplicationState, action.text("state"), "state")
    asked = action.ask_first(
        f"confirm.close.{state.value}", f"enrollment.action.{_CLOSE_VERB.get(state, 'reject')}", login=application.login
    )
    if asked is not None:
        return asked
    decisions.close(
        action.db, application, state, action.text("reason"), handoff=handoff, actor=action.actor, now=action.clock()
    )
    return action.done(state.value)


_CLOSE_VERB = {
    ApplicationState.REJECTED: "reject",
    ApplicationState.WITHDRAWN: "withdraw",
    ApplicationState.SUSPENDED: "suspend",
}


@router.post("/hr/enrollment/{application_id}/recheck")
def recheck(action: HrAction, settings: EnrollmentSettingsDep) -> Response:
    decisions.confirm_recheck(
        action.db, action.application(), action.text("notes"), settings=settings, actor=action.actor, now=action.clock()
    )
    return _back(action.application_id)
