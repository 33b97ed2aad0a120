"""In a real Chromium, a refused form comes back as the same page: the reason beside it in the person's language,
and what they typed still in its fields (``gateway.web.forms``) — the phone page, the work state, HR's decision with
a wrong evidence file, and a CSV with a wrong header. Every refusal is audited."""

import html
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlmodel import col, select

from gateway.audit.models import AuditEvent
from gateway.db import session_scope
from gateway.enrollment.models import Application, Evidence
from gateway.web.i18n import catalog
from tests.gateway.enrollment.conftest import (
    ONE_DATABASE_KIND,
    Portal,
    signed_in,
    signed_in_page,
)
from tests.gateway.enrollment.test_pages import _apply, _walk_to_approval
from tests.support.untranslated import untranslated_on

pytestmark = [pytest.mark.e2e, ONE_DATABASE_KIND]


def _sign_in(browser: Browser, portal: Portal, login: str, locale: str = "en-US") -> Page:
    return signed_in_page(browser.new_context(base_url=portal.base_url, locale=locale), login)


def _refusals(portal: Portal, action: str) -> list[str]:
    with session_scope(portal.engine) as db:
        query = select(AuditEvent).where(AuditEvent.action == action, AuditEvent.outcome == "refused")
        return [str(event.detail) for event in db.exec(query.order_by(col(AuditEvent.seq)))]


@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_a_refused_phone_number_stays_in_its_field_with_the_reason_in_the_persons_language(
    browser: Browser, portal: Portal, locale: str
) -> None:
    page = _sign_in(browser, portal, "applicant1", locale)
    page.goto("/agent/phone")
    page.fill("#new-number", "call me at home")
    page.click("#add")
    expect(page.locator("#error")).to_be_visible()
    language = "zh-CN" if locale == "zh-CN" else "en"
    assert page.inner_text("#error") == catalog(language)["voice.refused.not_a_number"]
    assert page.input_value("#new-number") == "call me at home"
    assert page.url.endswith("/agent/phone/numbers")
    assert len(_refusals(portal, "voice.number.add")) == 1


def test_the_work_state_page_marks_the_current_state_and_refuses_on_call_by_hand(
    browser: Browser, portal: Portal
) -> None:
    page = _sign_in(browser, portal, "applicant1")
    page.goto("/agent/work-state")
    expect(page.locator("#state-on_call")).to_have_count(0)
    page.select_option("#break-reason", "meeting")
    page.click("#state-break")
    expect(page.locator("#current-state")).to_have_attribute("data-state", "break")
    assert page.get_attribute("#state-break", "aria-pressed") == "true"
    assert page.get_attribute("#state-ready", "aria-pressed") == "false"
    assert page.input_value("#break-reason") == "meeting"  # the chosen reason is shown, not reset to the first
    csrf = page.get_attribute("#break-form input[name=csrf]", "value")
    refused = page.request.post("/agent/work-state", form={"csrf": csrf or "", "state": "on_call"})
    assert refused.status == 422 and catalog("en")["refused.work_state_on_call"] in html.unescape(refused.text())
    assert _refusals(portal, "supervision.work_state")


def test_a_wrong_evidence_file_keeps_hrs_notes_on_the_application_page(
    browser: Browser, portal: Portal, tmp_path: Path
) -> None:
    page = _sign_in(browser, portal, "applicant2")
    page.goto("/enrollment")
    page.fill("input[name=callback_number]", "+86 138 0013 8000")
    page.click("#apply")
    with session_scope(portal.engine) as db:
        application_id = db.exec(select(Application).where(Application.login == "applicant2")).one().id
    script = tmp_path / "visit.docx"
    script.write_bytes(b"PK\x03\x04" + bytes(range(256)))  # a Word file (a ZIP): not on the accepted list
    hr = _sign_in(browser, portal, "hr1")
    hr.goto(f"/hr/enrollment/{application_id}")
    hr.fill("#decide-notes", "Quiet room, door closes, 120 Mbit/s measured")
    hr.set_input_files("#decide-form input[name=evidence]", str(script))
    hr.click("#decide")
    expect(hr.locator("#error")).to_contain_text("This kind of file is not accepted")
    assert hr.input_value("#decide-notes") == "Quiet room, door closes, 120 Mbit/s measured"
    expect(hr.locator("#application")).to_have_attribute("data-stage", "application")  # nothing was decided
    with session_scope(portal.engine) as db:
        assert db.exec(select(Evidence).where(Evidence.application_id == application_id)).all() == []
    assert "evidence_type" in _refusals(portal, "enrollment.decide")[-1]


def test_a_csv_with_a_wrong_header_says_which_columns_in_words(
    browser: Browser, portal: Portal, tmp_path: Path
) -> None:
    upload = tmp_path / "staff.csv"
    upload.write_text("login,phone_nr\nagent7,+8613800138000\n")
    hr = _sign_in(browser, portal, "hr1", "zh-CN")
    hr.goto("/hr/enrollment-import")
    hr.set_input_files("#import-form input[name=file]", str(upload))
    hr.click("#import")
    error = hr.inner_text("#error")
    assert error.startswith("文件第一行必须列出列名") and "phone_nr" in error
    assert "[" not in error and "'" not in error  # no Python list
    expect(hr.locator("#import-form")).to_be_visible()


@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_csv_row_problems_name_the_line_and_column_in_the_readers_language_and_lose_no_row(
    browser: Browser, portal: Portal, tmp_path: Path, locale: str
) -> None:
    upload = tmp_path / "staff.csv"
    upload.write_text(
        "login,callback_number\n"
        "applicant1,+86 138 0013 8000\n"
        "applicant2,+86 123\n"  # line 3: not a phone number
        "nobody,\n"  # line 4: no such account
        "hr1,13800138001,extra\n"  # line 5: one field too many
        "applicant1,\n",  # line 6: line 2 opened an application for applicant1
        encoding="utf-8",
    )
    hr = _sign_in(browser, portal, "hr1", locale)
    hr.goto("/hr/enrollment-import")
    hr.set_input_files("#import-form input[name=file]", str(upload))
    hr.click("#import")
    progress = hr.locator("#import-progress")
    expect(progress).to_have_attribute("data-finished", "true", timeout=20_000)
    assert (progress.get_attribute("data-processed"), progress.get_attribute("data-imported")) == ("5", "1")
    words = catalog("zh-CN" if locale == "zh-CN" else "en")
    shown = [
        (row.get_attribute("data-line"), row.get_attribute("data-column"), row.locator("td").all_inner_texts())
        for row in hr.locator("#import-problems tr[data-line]").all()
    ]
    assert shown == [
        ("3", "callback_number", ["3", "callback_number", words["refused.phone_invalid"].format(number="+86 123")]),
        ("4", "login", ["4", "login", words["refused.application_unknown_login"].format(login="nobody")]),
        (
            "5",
            "",
            ["5", words["enrollment.import.whole_row"], words["refused.csv_row_fields"].format(found=3, expected=2)],
        ),
        ("6", "login", ["6", "login", words["refused.application_exists"].format(login="applicant1")]),
    ]
    if locale == "zh-CN":
        assert untranslated_on(hr) == {}
    with session_scope(portal.engine) as db:  # the good row was imported beside the refused ones
        assert [a.login for a in db.exec(select(Application)).all()] == ["applicant1"]


def test_with_no_sms_the_agent_takes_the_number_hr_approved(browser: Browser, portal: Portal) -> None:
    application_id = _apply(portal)
    with signed_in(portal, "hr1") as hr:
        _walk_to_approval(hr, application_id, portal.settings.enrollment.stages)
    page = _sign_in(browser, portal, "applicant1")
    page.goto("/agent/phone")
    expect(page.locator("#hr-number")).to_contain_text("HR approved +86")
    page.fill("#new-number", "+86 139 0013 9000")
    page.click("#add")  # this portal has no SMS gateway: the code cannot be sent
    assert page.inner_text("#error") == catalog("en")["voice.refused.sms_not_sent"]
    assert page.input_value("#new-number") == "+86 139 0013 9000"
    page.click("#use-hr-number")
    row = page.locator("#numbers tr[data-state='vetted']")
    expect(row).to_have_count(1)
    expect(page.locator("#use-hr-number")).to_have_count(0)
    with session_scope(portal.engine) as db:
        adopted = db.exec(select(AuditEvent).where(AuditEvent.action == "voice.number.adopt_vetted")).all()
        assert [(event.actor, event.outcome) for event in adopted] == [("applicant1", "confirmed")]


def test_a_wrong_number_on_the_application_is_refused_as_typed(browser: Browser, portal: Portal) -> None:
    page = _sign_in(browser, portal, "applicant1", "zh-CN")
    page.goto("/enrollment")
    page.fill("input[name=callback_number]", "138 00")
    page.click("#apply")
    assert page.inner_text("#error") == catalog("zh-CN")["refused.phone_invalid"].format(number="138 00")
    assert page.input_value("input[name=callback_number]") == "138 00"
    with session_scope(portal.engine) as db:
        assert db.exec(select(Application)).all() == []
    assert "phone_invalid" in _refusals(portal, "enrollment.apply")[-1]
