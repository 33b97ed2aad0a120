"""Times in the viewer's zone: the browser's own (its script tells the gateway), else the site's ``portal.time_zone``
— never UTC because the server runs in UTC. A real Chromium told it is in Shanghai; an HTTP client that runs no
script gets the site's zone."""

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser
from sqlalchemy import Engine
from sqlmodel import col, select

from gateway.clock import as_utc
from gateway.db import session_scope
from gateway.sessions.models import HomeSession
from tests.gateway.enrollment.conftest import GROUPS, PASSWORDS, Portal, policy_text
from tests.support import portal as whole
from tests.support.browser import sign_in_page
from tests.support.clock import MovableClock

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def portal(tmp_path: Path, db_url: str, engine: Engine, clock: MovableClock) -> Iterator[Portal]:
    with whole.serving_portal(
        tmp_path,
        db_url,
        engine,
        kind=Portal,
        passwords=PASSWORDS,
        groups=GROUPS,
        policy=policy_text(),
        settings={"portal": {"time_zone": "Europe/Berlin"}},
        clock=clock,
    ) as running:
        yield running


def _started(text: str) -> str:
    found = re.search(r"(\d{4}-\d\d-\d\d \d\d:\d\d [A-Z+\-0-9]+)", text)
    assert found, text
    return found.group(1)


def _signed_in_at(portal: Portal, login: str) -> datetime:
    """When the person's newest session began, as the page's "since" shows it (read after the sign-in: a time taken
    before it can fall in the minute before)."""
    with session_scope(portal.engine) as db:
        query = select(HomeSession).where(HomeSession.login == login).order_by(col(HomeSession.created_at).desc())
        newest = db.exec(query).first()
        assert newest is not None
        return as_utc(newest.created_at)


def test_the_browsers_zone_else_the_sites(portal: Portal, browser: Browser) -> None:
    page = browser.new_context(base_url=portal.base_url, locale="en-US", timezone_id="Asia/Shanghai").new_page()
    sign_in_page(page, "applicant1", PASSWORDS["applicant1"])
    page.wait_for_url(lambda url: url.endswith("/agent"))
    page.wait_for_function("document.cookie.includes('sohogw_tz=')")
    page.reload()
    shanghai = _signed_in_at(portal, "applicant1").astimezone(ZoneInfo("Asia/Shanghai"))
    assert _started(page.inner_text("#session-times")) == f"{shanghai:%Y-%m-%d %H:%M} CST"

    with portal.client() as client:  # no script ran: the site's zone
        whole.sign_in(client, "applicant1", PASSWORDS["applicant1"])
        text = client.get("/agent", headers={"accept": "text/html"}).text
    berlin = _signed_in_at(portal, "applicant1").astimezone(ZoneInfo("Europe/Berlin"))
    assert _started(text) == f"{berlin:%Y-%m-%d %H:%M %Z}"
    assert berlin.utcoffset() != datetime.now(ZoneInfo("UTC")).utcoffset()  # the check can tell the zones apart
