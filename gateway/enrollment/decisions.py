"""Moving an application: decide the current stage, override with a reason, reject, withdraw, suspend, re-check.

A stage is decided only when it is the current one; moving past stages without deciding them takes an override
with a reason. Passing the last stage before ``approved`` approves, and approval hands the person on
(``handoff.grant_seat``); rejecting, withdrawing or suspending an approved person takes it all back
(``handoff.withdraw_seat``). Every change is audited in the same transaction.
"""

from datetime import datetime, timedelta

from sqlmodel import Session

from gateway.enrollment import stages as order
from gateway.enrollment.errors import ApplicationClosed, InvalidApplication
from gateway.enrollment.handoff import HandOff, grant_seat, withdraw_seat
from gateway.enrollment.models import Application, ApplicationState, DecisionOutcome, StageDecision
from gateway.enrollment.service import LIVE_STATES, audit_change, callback_e164
from gateway.enrollment.settings import FINAL_STAGE, EnrollmentSettings


def _require_open(application: Application) -> None:
    if application.state is not ApplicationState.OPEN:
        raise ApplicationClosed(f"the application is {application.state.value}; no stage can be decided")


def _record_decision(
    db: Session,
    application: Application,
    stage: str,
    outcome: DecisionOutcome,
    notes: str,
    actor: str,
    now: datetime,
    override_reason: str | None = None,
) -> None:
    db.add(
        StageDecision(
            application_id=application.id or 0,
            stage=stage,
            outcome=outcome,
            notes=notes.strip(),
            override_reason=override_reason,
            decided_by=actor,
            decided_at=now,
        )
    )


def _arrive(
    db: Session,
    application: Application,
    stage: str,
    handoff: HandOff,
    settings: EnrollmentSettings,
    actor: str,
    now: datetime,
) -> None:
    application.stage, application.updated_at = stage, now
    if stage == FINAL_STAGE:
        if not application.callback_e164:
            raise InvalidApplication("record the vetted callback number before approving")
        application.state, application.approved_at = ApplicationState.APPROVED, now
        application.recheck_due_at = now + timedelta(days=settings.recheck_interval_days)
        db.add(application)
        db.flush()
        grant_seat(db, application, handoff, actor=actor, now=now)
    db.add(application)
    db.flush()


def decide(
    db: Session,
    application: Application,
    stage: str,
    outcome: DecisionOutcome,
    notes: str,
    *,
    handoff: HandOff,
    settings: EnrollmentSettings,
    actor: str,
    now: datetime,
    callback_number: str = "",
) -> Application:
    """Decide the current stage: passed moves on (approving after the last one), failed rejects."""
    _require_open(application)
    order.check_current(settings.stages, application.stage, stage)
    if outcome is DecisionOutcome.SKIPPED:
        raise InvalidApplication("a stage is skipped only through an override with a reason")
    if callback_number.strip():
        application.callback_e164 = callback_e164(callback_number, settings.phone_region)
    _record_decision(db, application, stage, outcome, notes, actor, now)
    audit_change(db, application, "enrollment.decide", outcome.value, actor, now)
    if outcome is DecisionOutcome.FAILED:
        _close(db, application, ApplicationState.REJECTED, f"failed {stage}: {notes.strip()}", actor, now)
        return application
    _arrive(db, application, order.next_stage(settings.stages, stage), handoff, settings, actor, now)
    return application


def override(
    db: Session,
    application: Application,
    target: str,
    reason: str,
    *,
    handoff: HandOff,
    settings: EnrollmentSettings,
    actor: str,
    now: datetime,
) -> Application:
    """Move forward to ``target``, recording every stage passed over as skipped with HR's reason."""
    _require_open(application)
    if len(reason.strip()) < 5:
        raise InvalidApplication("an override needs its reason written out")
    skipped = order.skipped_by_override(settings.stages, application.stage, target)
    for stage in skipped:
        _record_decision(
            db, application, stage, DecisionOutcome.SKIPPED, "", actor, now, override_reason=reason.strip()
        )
    audit_change(
        db, application, "enrollment.override", "skipped", actor, now, skipped=skipped, to=target, reason=reason
    )
    _arrive(db, application, target, handoff, settings, actor, now)
    return application


def _close(
    db: Session, application: Application, state: ApplicationState, reason: str, actor: str, now: datetime
) -> None:
    application.state, application.closed_at, application.closed_by = state, now, actor
    application.close_reason, application.updated_at = reason, now
    db.add(application)
    db.flush()
    audit_change(db, application, f"enrollment.{state.value}", state.value, actor, now, reason=reason)


def close(
    db: Session,
    application: Application,
    state: ApplicationState,
    reason: str,
    *,
    handoff: HandOff,
    actor: str,
    now: datetime,
) -> Application:
    """Reject or withdraw (from any open stage or after approval) or suspend (an approved seat); what approval
    granted is taken back first. The application is locked and read again first, as the security admin's issue
    page locks it: an issuance running meanwhile commits before the person's certificates are looked for, and one
    that comes after finds the application closed (``certificate_requests.open_request_to_issue``)."""
    db.refresh(application, with_for_update=True)
    allowed = {
        ApplicationState.REJECTED: LIVE_STATES,
        ApplicationState.WITHDRAWN: LIVE_STATES,
        ApplicationState.SUSPENDED: (ApplicationState.APPROVED,),
    }
    if state not in allowed:
        raise InvalidApplication(f"an application cannot be set to {state.value} by hand")
    if application.state not in allowed[state]:
        raise ApplicationClosed(f"a {application.state.value} application cannot be {state.value}")
    if not reason.strip():
        raise InvalidApplication(f"say why the application is {state.value}")
    if application.state is ApplicationState.APPROVED:
        withdraw_seat(db, application, handoff, actor=actor, now=now, why=state.value)
    _close(db, application, state, reason.strip(), actor, now)
    return application


def confirm_recheck(
    db: Session, application: Application, notes: str, *, settings: EnrollmentSettings, actor: str, now: datetime
) -> Application:
    """HR re-checked an approved agent and found nothing against them: the next re-check is due an interval on."""
    if application.state is not ApplicationState.APPROVED:
        raise ApplicationClosed("only an approved agent is re-checked")
    application.recheck_due_at = now + timedelta(days=settings.recheck_interval_days)
    application.reminded_at, application.updated_at = None, now
    db.add(application)
    db.flush()
    audit_change(db, application, "enrollment.recheck", "passed", actor, now)
    return application
