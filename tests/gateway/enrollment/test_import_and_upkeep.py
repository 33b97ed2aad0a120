"""CSV import row by row with a report of refused rows; re-check reminders and the retention purge."""

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, col, select

from gateway.audit.models import AuditEvent
from gateway.db import session_scope
from gateway.enrollment import csv_import, decisions, service
from gateway.enrollment.models import (
    Application,
    ApplicationState,
    DecisionOutcome,
    EnvcheckRun,
    Evidence,
    ImportRun,
)
from gateway.enrollment.upkeep import purge_closed, remind_due_rechecks
from gateway.enrollment.workers import CsvImport, EnrollmentUpkeep
from tests.gateway.enrollment.conftest import PHONE, Portal, post_form, signed_in, wait_for
from tests.support.workers import one_pass

CSV = (
    "\ufefflogin,callback_number\n"
    "applicant1,+86 138 0013 8000\n"
    "applicant2,+86 123\n"  # line 3: not a phone number
    "nobody,\n"  # line 4: no such account
    "hr1,13800138001,extra\n"  # line 5: one field too many
    "applicant1,\n"  # line 6: already has an application (from line 2)
)


def test_bad_rows_are_reported_by_line_and_import_nothing_while_good_rows_import(portal: Portal) -> None:
    with signed_in(portal, "hr1") as hr:
        answer = post_form(
            hr,
            "/hr/enrollment-import",
            "/hr/enrollment-import",
            {},
            files={"file": ("people.csv", CSV.encode(), "text/csv")},
        )
        assert answer.status_code == 303, answer.text
        report_url = answer.headers["location"]
        wait_for(lambda: 'data-finished="true"' in hr.get(report_url).text)
        report = hr.get(report_url).text
    assert re.search(r'data-total="5" data-processed="5"\s+data-imported="1"', report)
    lines = [int(n) for n in re.findall(r'<tr data-line="(\d+)"', report)]
    assert lines == [3, 4, 5, 6]
    assert "is not a phone number that can be called" in report and "is not an account in the company" in report
    assert "This row has 3 fields; the header names 2" in report
    with session_scope(portal.engine) as db:
        applications = db.exec(select(Application)).all()
        assert [(a.login, a.callback_e164) for a in applications] == [("applicant1", PHONE)]
        problems = json.loads(db.exec(select(ImportRun)).one().problems)
        assert problems[0] == {
            "line": 3,
            "column": "callback_number",
            "key": "phone_invalid",
            "values": {"number": "+86 123"},
            "refusal": "enrollment.invalid",
            "message": "'+86 123' is not a valid phone number (for CN unless it starts with +)",
        }
        assert [(p["line"], p["column"]) for p in problems[1:]] == [(4, "login"), (5, None), (6, "login")]


def test_an_import_retried_after_a_failure_part_way_resumes_after_the_rows_it_counted(
    portal: Portal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker runner replays an upload's nudge when its pass failed; the rows counted before the failure must
    not be imported again (each would come back as a refusal) nor counted twice."""
    rows = csv_import.parse_rows(CSV)
    now = datetime.now(UTC)
    with session_scope(portal.engine) as db:
        import_id = csv_import.begin_import(db, len(rows), actor="hr1", now=now).id or 0
    counted = csv_import._count
    counts = 0

    def third_count_fails(
        db: Session, import_id: int, imported: bool, problem: dict[str, object] | None = None
    ) -> None:
        nonlocal counts
        counts += 1
        if counts == 3:
            raise OSError("the database went away")  # two rows counted and committed, the third not
        counted(db, import_id, imported, problem)

    def run_import() -> None:
        settings, handoff = portal.settings.enrollment, portal.handoff()
        csv_import.run_import(
            portal.engine, import_id, rows, handoff, settings=settings, actor="hr1", clock=lambda: now
        )

    with monkeypatch.context() as patched:
        patched.setattr(csv_import, "_count", third_count_fails)
        with pytest.raises(OSError):
            run_import()
    with session_scope(portal.engine) as db:
        assert db.get(ImportRun, import_id).processed_rows == 2  # type: ignore[union-attr]
    run_import()  # the runner's retry
    run_import()  # a replay of the finished import
    with session_scope(portal.engine) as db:
        run = db.get(ImportRun, import_id)
        assert run is not None and run.finished_at is not None
        assert (run.total_rows, run.processed_rows, run.imported) == (5, 5, 1)
        assert [p["line"] for p in json.loads(run.problems)] == [3, 4, 5, 6]
        assert [a.login for a in db.exec(select(Application)).all()] == ["applicant1"]
        finished = db.exec(
            select(AuditEvent).where(AuditEvent.action == "enrollment.import", AuditEvent.outcome == "finished")
        ).all()
        assert len(finished) == 1


def test_a_file_without_the_login_column_is_refused_whole(portal: Portal) -> None:
    with signed_in(portal, "hr1") as hr:
        answer = post_form(
            hr,
            "/hr/enrollment-import",
            "/hr/enrollment-import",
            {},
            files={"file": ("people.csv", b"name,phone\nx,y\n", "text/csv")},
        )
    assert answer.status_code == 422 and "The first line of the file must name the columns" in answer.text
    assert "Missing: login. Not known: name, phone." in answer.text
    with session_scope(portal.engine) as db:
        assert db.exec(select(ImportRun)).all() == []


def test_an_import_a_restart_cut_off_is_finished_by_the_interval_pass_and_reported_in_the_readers_language(
    portal: Portal,
) -> None:
    started = datetime.now(UTC) - timedelta(hours=2)  # its rows were in the memory of a process that is gone
    with session_scope(portal.engine) as db:
        run = ImportRun(started_by="hr1", started_at=started, total_rows=40, processed_rows=12, imported=12)
        db.add(run)
        db.flush()
        report_url = f"/hr/enrollment-import/{run.id}"
    one_pass(portal.engine, CsvImport(portal.engine, portal.settings.enrollment, lambda: datetime.now(UTC)))
    with signed_in(portal, "hr1") as hr:
        english = hr.get(report_url).text
        hr.cookies.set("sohogw_lang", "zh-CN")
        chinese = hr.get(report_url).text
    assert 'data-finished="true"' in english
    assert "The import stopped after 12 of 40 rows when the gateway restarted" in english
    assert "网关重启，导入在处理 12/40 行后中断" in chinese and "The import stopped" not in chinese


def _approved(portal: Portal, login: str, now: datetime) -> Application:
    with session_scope(portal.engine) as db:
        settings = portal.settings.enrollment
        application = service.start_application(
            db, portal.handoff(), login, callback_number=PHONE, settings=settings, actor="hr1", now=now
        )
        decisions.override(
            db,
            application,
            "approved",
            "seasonal surge, vetted on site",
            handoff=portal.handoff(),
            settings=settings,
            actor="hr1",
            now=now,
        )
        return application


def test_re_check_reminders_name_each_due_agent_once_per_due_date(portal: Portal) -> None:
    start = datetime(2026, 1, 5, tzinfo=UTC)
    interval = timedelta(days=portal.settings.enrollment.recheck_interval_days)
    application = _approved(portal, "applicant1", start)
    with session_scope(portal.engine) as db:
        assert remind_due_rechecks(db, start + interval - timedelta(days=1)) == []
        assert [a.login for a in remind_due_rechecks(db, start + interval)] == ["applicant1"]
        assert remind_due_rechecks(db, start + interval + timedelta(days=1)) == []
        renewed = service.get_application(db, application.id or 0)
        decisions.confirm_recheck(
            db,
            renewed,
            "fine",
            settings=portal.settings.enrollment,
            actor="hr1",
            now=start + interval + timedelta(days=2),
        )
        assert remind_due_rechecks(db, start + 2 * interval) == []
        assert [a.login for a in remind_due_rechecks(db, start + 2 * interval + timedelta(days=2))] == ["applicant1"]
        reminders = db.exec(select(AuditEvent).where(AuditEvent.action == "enrollment.recheck_due")).all()
        assert len(reminders) == 2
    with signed_in(portal, "hr1") as hr:
        assert 'data-login="applicant1"' not in hr.get("/hr/enrollment?recheck_due=true").text  # due in the future


def test_rejected_applications_and_their_evidence_are_purged_after_the_retention(portal: Portal) -> None:
    closed_at = datetime(2026, 2, 1, tzinfo=UTC)
    retention = timedelta(days=portal.settings.enrollment.rejected_retention_days)
    with session_scope(portal.engine) as db:
        rejected = service.start_application(
            db,
            portal.handoff(),
            "applicant2",
            callback_number="",
            settings=portal.settings.enrollment,
            actor="hr1",
            now=closed_at,
        )
        decisions.decide(
            db,
            rejected,
            "application",
            DecisionOutcome.FAILED,
            "incomplete",
            handoff=portal.handoff(),
            settings=portal.settings.enrollment,
            actor="hr1",
            now=closed_at,
        )
        db.add(
            Evidence(
                application_id=rejected.id or 0,
                stage="application",
                kind="file",
                filename="a.txt",
                content_type="text/plain",
                size=1,
                sha256="0",
                content=b"x",
                added_by="hr1",
                added_at=closed_at,
            )
        )
    _approved(portal, "applicant1", closed_at)
    with session_scope(portal.engine) as db:
        assert purge_closed(db, closed_at + retention - timedelta(hours=1), retention) == 0
        owing = db.get_one(Application, rejected.id)
        owing.revocation_owed_since = closed_at  # a withdrawal during a directory outage owes revocations
        db.add(owing)
        assert purge_closed(db, closed_at + retention + timedelta(hours=1), retention) == 0  # kept until paid
        owing.revocation_owed_since = None
        db.add(owing)
        assert purge_closed(db, closed_at + retention + timedelta(hours=1), retention) == 1
        left = db.exec(select(Application.login, Application.state)).all()
        assert left == [("applicant1", ApplicationState.APPROVED)]
        assert db.exec(select(col(Evidence.id))).all() == []
        purge = db.exec(select(AuditEvent).where(AuditEvent.action == "enrollment.purge")).one()
        assert "applicant2" not in purge.detail + purge.target


def test_the_scheduled_job_reminds_purges_and_forgets_abandoned_environment_checks(portal: Portal) -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    settings = portal.settings.enrollment
    _approved(portal, "applicant1", start)
    with session_scope(portal.engine) as db:
        open_one = service.start_application(
            db, portal.handoff(), "applicant2", callback_number="", settings=settings, actor="hr1", now=start
        )
        db.add(EnvcheckRun(id="abandoned", application_id=open_one.id or 0, login="applicant2", started_at=start))
    later = start + timedelta(days=settings.recheck_interval_days + 1)
    one_pass(portal.engine, EnrollmentUpkeep(settings, lambda: later))
    with session_scope(portal.engine) as db:
        assert db.get(EnvcheckRun, "abandoned") is None
        reminded = db.exec(select(AuditEvent).where(AuditEvent.action == "enrollment.recheck_due")).all()
        assert [e.target for e in reminded] == ["applicant1"]
