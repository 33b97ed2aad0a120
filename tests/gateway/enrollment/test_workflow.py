"""The stages in order, overrides with reasons, rejection from any stage, and what approval hands on."""

from datetime import UTC, datetime

import pytest
from sqlmodel import Session, col, select

from gateway.audit.models import AuditEvent
from gateway.db import session_scope
from gateway.enrollment import decisions, service
from gateway.enrollment.errors import ApplicationClosed, InvalidApplication, StageConflict
from gateway.enrollment.models import (
    Application,
    ApplicationState,
    CertificateRequest,
    CertificateRequestState,
    DecisionOutcome,
    StageDecision,
)
from gateway.voice.models import CallbackNumber, NumberStatus
from tests.gateway.enrollment.conftest import PHONE, Portal, wait_for

PASSED, FAILED = DecisionOutcome.PASSED, DecisionOutcome.FAILED


def _start(db: Session, portal: Portal, login: str = "applicant1", phone: str = PHONE) -> Application:
    settings = portal.settings.enrollment
    return service.start_application(
        db, portal.handoff(), login, callback_number=phone, settings=settings, actor="hr1", now=datetime.now(UTC)
    )


def _decide(db: Session, portal: Portal, application: Application, stage: str, outcome: DecisionOutcome) -> None:
    decisions.decide(
        db,
        application,
        stage,
        outcome,
        f"{stage} notes",
        handoff=portal.handoff(),
        settings=portal.settings.enrollment,
        actor="hr1",
        now=datetime.now(UTC),
    )


def _actions(db: Session, login: str) -> list[str]:
    events = db.exec(select(AuditEvent).where(AuditEvent.target == login).order_by(col(AuditEvent.seq))).all()
    return [e.action for e in events]


def test_a_stage_cannot_be_decided_before_the_ones_ahead_of_it(portal: Portal) -> None:
    with session_scope(portal.engine) as db:
        application = _start(db, portal)
        with pytest.raises(StageConflict, match="at stage 'application'"):
            _decide(db, portal, application, "home_visit", PASSED)
        with pytest.raises(StageConflict, match="unknown stage"):
            _decide(db, portal, application, "lottery", PASSED)
        _decide(db, portal, application, "application", PASSED)
        assert application.stage == "background_check"
        assert application.state is ApplicationState.OPEN


def test_override_records_every_skipped_stage_with_its_reason_and_audits_it(portal: Portal) -> None:
    with session_scope(portal.engine) as db:
        application = _start(db, portal)
        with pytest.raises(InvalidApplication, match="reason"):
            decisions.override(
                db,
                application,
                "training",
                " ",
                handoff=portal.handoff(),
                settings=portal.settings.enrollment,
                actor="hr1",
                now=datetime.now(UTC),
            )
        decisions.override(
            db,
            application,
            "training",
            "vetted by the previous employer",
            handoff=portal.handoff(),
            settings=portal.settings.enrollment,
            actor="hr1",
            now=datetime.now(UTC),
        )
        recorded = db.exec(select(StageDecision).order_by(col(StageDecision.id))).all()
        assert [(d.stage, d.outcome) for d in recorded] == [
            ("application", DecisionOutcome.SKIPPED),
            ("background_check", DecisionOutcome.SKIPPED),
            ("home_visit", DecisionOutcome.SKIPPED),
        ]
        assert {d.override_reason for d in recorded} == {"vetted by the previous employer"}
        assert application.stage == "training"
        assert "enrollment.override" in _actions(db, "applicant1")
        with pytest.raises(StageConflict, match="forward only"):
            decisions.override(
                db,
                application,
                "application",
                "going back",
                handoff=portal.handoff(),
                settings=portal.settings.enrollment,
                actor="hr1",
                now=datetime.now(UTC),
            )


@pytest.mark.parametrize("stage_count", [0, 2])
def test_failing_or_rejecting_at_any_open_stage_closes_the_application(portal: Portal, stage_count: int) -> None:
    stages = portal.settings.enrollment.stages
    with session_scope(portal.engine) as db:
        application = _start(db, portal)
        for stage in stages[:stage_count]:
            _decide(db, portal, application, stage, PASSED)
        _decide(db, portal, application, stages[stage_count], FAILED)
        assert application.state is ApplicationState.REJECTED
        assert application.close_reason is not None and stages[stage_count] in application.close_reason
        with pytest.raises(ApplicationClosed):
            _decide(db, portal, application, application.stage, PASSED)
        second = _start(db, portal, "applicant2")
        _decide(db, portal, second, "application", PASSED)
        decisions.close(
            db,
            second,
            ApplicationState.WITHDRAWN,
            "moved house",
            handoff=portal.handoff(),
            actor="hr1",
            now=datetime.now(UTC),
        )
        assert second.state is ApplicationState.WITHDRAWN and second.stage == "background_check"


def test_a_callback_number_that_cannot_exist_is_refused() -> None:
    with pytest.raises(InvalidApplication, match="not a valid phone number"):
        service.callback_e164("+86 123", "CN")
    assert service.callback_e164("138 0013 8000", "CN") == PHONE


def test_approval_adds_the_group_opens_a_certificate_request_and_vets_the_number(portal: Portal) -> None:
    now = datetime.now(UTC)
    with session_scope(portal.engine) as db:
        db.add(
            CallbackNumber(
                person_id=portal.directory.lookup("applicant1").person_id,
                login="applicant1",
                e164=PHONE,
                region="CN",
                kind="mobile",
                status=NumberStatus.CONFIRMED,
                created_at=now,
                updated_at=now,
            )
        )
        application = _start(db, portal)
        for stage in portal.settings.enrollment.stages[:-1]:
            assert "SOHO-Agents" not in {g.name for g in portal.directory.lookup("applicant1").groups}
            _decide(db, portal, application, stage, PASSED)
        assert application.state is ApplicationState.APPROVED and application.stage == "approved"
        assert application.recheck_due_at is not None
    wait_for(lambda: "SOHO-Agents" in {g.name for g in portal.directory.lookup("applicant1").groups})
    with session_scope(portal.engine) as db:
        request = db.exec(select(CertificateRequest).where(CertificateRequest.login == "applicant1")).one()
        assert request.state is CertificateRequestState.OPEN
        number = db.exec(select(CallbackNumber).where(CallbackNumber.login == "applicant1")).one()
        assert number.vetted_by == "hr1" and number.vetted_at is not None
        assert service.vetted_number(db, "applicant1") == PHONE


def test_approval_needs_a_vetted_callback_number(portal: Portal) -> None:
    with session_scope(portal.engine) as db:
        application = _start(db, portal, phone="")
        for stage in portal.settings.enrollment.stages[:-2]:
            _decide(db, portal, application, stage, PASSED)
        with pytest.raises(InvalidApplication, match="callback number"):
            _decide(db, portal, application, "training", PASSED)
    assert "SOHO-Agents" not in {g.name for g in portal.directory.lookup("applicant1").groups}


def test_a_person_has_one_live_application_at_a_time_and_must_exist_in_the_directory(portal: Portal) -> None:
    with session_scope(portal.engine) as db:
        _start(db, portal)
        with pytest.raises(Exception, match="already has an application"):
            _start(db, portal)
        with pytest.raises(InvalidApplication, match="not an account"):
            _start(db, portal, "nobody")
