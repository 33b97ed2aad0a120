"""One language at a time: every page an agent, a supervisor, HR and a security admin use, and the error pages a
wrong link leads to, walked in Chromium in Chinese, show no English and no catalog key (``tests/support/
untranslated.py``) and use 座席, never 坐席, for "seat"."""

from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlmodel import col, select

from gateway.clock import utcnow
from gateway.db import session_scope
from gateway.enrollment.models import Application
from gateway.seats.models import SeatLease, SeatLeaseState
from gateway.sessions.models import HomeSession
from gateway.web.i18n import catalog
from tests.gateway.enrollment.conftest import ONE_DATABASE_KIND, Portal, signed_in_page
from tests.gateway.enrollment.test_pages import _apply
from tests.support.untranslated import untranslated_on

pytestmark = [pytest.mark.e2e, ONE_DATABASE_KIND]
SHOWN_DATA = ("Applicant1", "Applicant2", "Onsite-Agents", "SOHO-Agents", "Night-Shift")
"""Names the test people and groups carry, shown as they are in every language."""


def _chinese(browser: Browser, portal: Portal, login: str, javascript: bool = True) -> Page:
    context = browser.new_context(base_url=portal.base_url, locale="zh-CN", java_script_enabled=javascript)
    context.add_cookies([{"name": "sohogw_lang", "value": "zh-CN", "url": portal.base_url}])
    return signed_in_page(context, login)


def _walk(page: Page, paths: list[str]) -> dict[str, dict[str, str]]:
    found = {}
    for path in paths:
        page.goto(path)
        found.update(_look(page, path))
    return found


def _look(page: Page, where: str) -> dict[str, dict[str, str]]:
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert "坐席" not in page.inner_text("body")
    english = untranslated_on(page, shown_data=SHOWN_DATA)
    return {where: english} if english else {}


def seat_lease_of(session: HomeSession) -> SeatLease:
    """The lease the broker writes when it hands the agent a seat (no seat process runs here: the tile shows no
    picture, and its words are what is walked)."""
    now = utcnow()
    return SeatLease(
        id=f"lease-{session.id}"[:32],
        session_id=session.id or "",
        person_id=session.person_id,
        login=session.login,
        app_id="crm",
        backend="x11",
        node="this-node",
        seat_id="seat-1",
        state=SeatLeaseState.ASSIGNED,
        idle_timeout_seconds=900,
        max_session_seconds=28800,
        started_at=now,
        last_activity_at=now,
    )


def _import_report(hr: Page, portal: Portal, tmp_path: Path) -> str:
    """An import with refused rows (a bad number, an unknown account, a field too many), finished; its report's path."""
    upload = tmp_path / "staff.csv"
    upload.write_text("login,callback_number\napplicant2,+86 123\nnobody,\nhr1,138,extra\n", encoding="utf-8")
    hr.goto("/hr/enrollment-import")
    hr.set_input_files("#import-form input[name=file]", str(upload))
    hr.click("#import")
    expect(hr.locator("#import-progress")).to_have_attribute("data-finished", "true", timeout=20_000)
    assert hr.locator("#import-problems tr[data-line]").count() == 3
    return hr.url.removeprefix(portal.base_url)


def test_the_pages_show_no_english_in_chinese(browser: Browser, portal: Portal, tmp_path: Path) -> None:
    application_id = _apply(portal)
    agent = _chinese(browser, portal, "applicant1")
    agent_pages = ["/agent", "/agent/work-state", "/agent/bulletins", "/agent/phone", "/enrollment"]
    with session_scope(portal.engine) as db:
        newest = (
            select(HomeSession).where(HomeSession.login == "applicant1").order_by(col(HomeSession.created_at).desc())
        )
        session = db.exec(newest).first()
        assert session is not None and session.id is not None
        agents_session = session.id
        db.add(seat_lease_of(session))  # a seat assigned to the agent, so the screen wall has a tile to show
    supervisor = _chinese(browser, portal, "sup1")
    supervisor_pages = [
        "/supervisor",
        "/supervision/wall",
        "/supervision/alerts",
        "/supervision/reports",
        "/supervision/reports?period=week",
        "/supervision/bulletins",
        "/supervision/surge",
        f"/supervision/agents/{agents_session}/recordings",
    ]
    hr = _chinese(browser, portal, "hr1")
    hr_pages = [
        "/hr",
        "/hr/enrollment",
        f"/hr/enrollment/{application_id}",
        "/hr/enrollment-import",
        _import_report(hr, portal, tmp_path),
    ]
    admin = _chinese(browser, portal, "admin1")
    admin_pages = [
        "/security-admin",
        "/security-admin/sessions",
        "/security-admin/policy",
        "/security-admin/policy?groups=SOHO-Agents;Night-Shift",
        "/security-admin/certificate-requests",
        "/security-admin/second-factor",
        "/security-admin/callback-numbers",
    ]
    found = {
        **_walk(agent, agent_pages),
        **_walk(supervisor, supervisor_pages),
        **_walk(hr, hr_pages),
        **_walk(admin, admin_pages),
    }
    supervisor.goto("/supervision/wall")
    expect(supervisor.locator(f'#wall-rows [data-session="{agents_session}"]')).to_be_visible()  # the agent's tile
    supervisor.check("#wall-screens")  # the screen wall: the grid of the agents' screens
    expect(supervisor.locator(f'#screen-grid figure[data-session="{agents_session}"]')).to_be_visible()
    found.update(_look(supervisor, "/supervision/wall (screen wall)"))
    assert found == {}
    # The positive control: the same check finds the English of an English page.
    agent.context.add_cookies([{"name": "sohogw_lang", "value": "en", "url": portal.base_url}])
    agent.goto("/agent/work-state")
    english = untranslated_on(agent)
    assert {"agent.title", "supervision.agent.break_reason", "nav.logout"} <= set(english.values())
    with session_scope(portal.engine) as db:
        assert db.exec(select(Application)).first() is not None  # the HR pages showed a real application


def test_sign_in_the_environment_check_and_a_confirmation_show_no_english_in_chinese(
    browser: Browser, portal: Portal
) -> None:
    visitor = browser.new_context(base_url=portal.base_url, locale="zh-CN").new_page()
    visitor.goto("/login")
    found = _look(visitor, "/login")
    visitor.fill("#username", "applicant1")
    visitor.fill("#password", "not-the-password")
    visitor.click("#sign-in")
    expect(visitor.locator("#error")).to_be_visible()
    found.update(_look(visitor, "/login (refused)"))
    _apply(portal)
    found.update(_walk(_chinese(browser, portal, "applicant1"), ["/enrollment/envcheck"]))
    # Without scripts the server asks itself: the confirmation page, before anything ends.
    admin = _chinese(browser, portal, "admin1", javascript=False)
    admin.goto("/security-admin/sessions")
    admin.locator("form[action$='/end'] button").first.click()
    expect(admin.locator("form input[name=confirmed]")).to_have_count(1)
    found.update(_look(admin, "confirmation of ending a session"))
    assert found == {}


@pytest.mark.parametrize(
    ("login", "path", "status"),
    [
        ("hr1", "/hr/enrollment/99999", 404),  # a record that is not there (the service's refusal)
        ("hr1", "/hr/enrollment/not-a-number", 422),  # an address part the route cannot read
        ("sup1", "/supervision/agents/no-such-session/recordings", 404),  # out of scope or gone: the same answer
        ("applicant1", "/no/such/page", 404),  # an address nothing serves
    ],
)
def test_the_error_pages_answer_in_chinese(
    browser: Browser, portal: Portal, login: str, path: str, status: int
) -> None:
    page = _chinese(browser, portal, login)
    answer = page.goto(path)
    assert answer is not None and answer.status == status
    expect(page.locator("#error")).to_be_visible()
    assert _look(page, path) == {}
    # The same address in English says it in English: the message comes from the catalog, not from the code.
    page.context.add_cookies([{"name": "sohogw_lang", "value": "en", "url": portal.base_url}])
    page.goto(path)
    assert page.inner_text("#error") in set(catalog("en").values())
