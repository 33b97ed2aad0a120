"""One language at a time: every page an agent, HR and a security admin use, walked in Chromium in Chinese, shows
no English the catalog translates (``tests/support/untranslated.py``) and uses 座席, never 坐席, for "seat"."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page
from sqlmodel import select

from gateway.db import make_engine, session_scope
from gateway.enrollment.models import Application
from tests.gateway.enrollment.conftest import PASSWORDS, Portal, running_portal
from tests.gateway.enrollment.test_pages import _apply
from tests.support.browser import chromium
from tests.support.sqlite import copy_sqlite
from tests.support.untranslated import untranslated_on

pytestmark = pytest.mark.e2e


@pytest.fixture
def portal(tmp_path: Path, sqlite_template: Path) -> Iterator[Portal]:
    db_url = copy_sqlite(sqlite_template, tmp_path / "enrollment.db")
    engine = make_engine(db_url)
    try:
        with running_portal(tmp_path, db_url, engine) as running:
            yield running
    finally:
        engine.dispose()


@pytest.fixture
def browser() -> Iterator[Browser]:
    with chromium() as running:
        yield running


def _chinese(browser: Browser, portal: Portal, login: str) -> Page:
    context = browser.new_context(base_url=portal.base_url, locale="zh-CN")
    context.add_cookies([{"name": "sohogw_lang", "value": "zh-CN", "url": portal.base_url}])
    page = context.new_page()
    page.goto("/login")
    page.fill("#username", login)
    page.fill("#password", PASSWORDS[login])
    page.click("#sign-in")
    page.wait_for_url(lambda url: "/login" not in url)
    return page


def _walk(page: Page, paths: list[str]) -> dict[str, dict[str, str]]:
    found = {}
    for path in paths:
        page.goto(path)
        assert page.locator("html").get_attribute("lang") == "zh-CN"
        assert "坐席" not in page.inner_text("body")
        if english := untranslated_on(page):
            found[path] = english
    return found


def test_the_pages_show_no_english_in_chinese(browser: Browser, portal: Portal) -> None:
    application_id = _apply(portal)
    agent = _chinese(browser, portal, "applicant1")
    agent_pages = ["/agent", "/agent/work-state", "/agent/bulletins", "/agent/phone", "/enrollment"]
    hr = _chinese(browser, portal, "hr1")
    hr_pages = ["/hr", "/hr/enrollment", f"/hr/enrollment/{application_id}", "/hr/enrollment-import"]
    admin = _chinese(browser, portal, "admin1")
    admin_pages = [
        "/security-admin",
        "/security-admin/sessions",
        "/security-admin/policy",
        "/security-admin/policy?groups=SOHO-Agents;Night-Shift",
        "/security-admin/certificate-requests",
        "/security-admin/second-factor",
    ]
    found = {**_walk(agent, agent_pages), **_walk(hr, hr_pages), **_walk(admin, admin_pages)}
    assert found == {}
    # The positive control: the same check finds the English of an English page.
    agent.context.add_cookies([{"name": "sohogw_lang", "value": "en", "url": portal.base_url}])
    agent.goto("/agent/work-state")
    english = untranslated_on(agent)
    assert {"agent.title", "supervision.agent.break_reason", "nav.logout"} <= set(english.values())
    with session_scope(portal.engine) as db:
        assert db.exec(select(Application)).first() is not None  # the HR pages showed a real application
