"""The wall in Debian's Chromium: it updates live when an agent changes state, and filters by team and state."""

import time

import pytest
from playwright.sync_api import expect

from tests.gateway.sessions.conftest import PASSWORDS
from tests.gateway.supervision.conftest import SupervisedPortal, post_form, signed_in
from tests.support.browser import chromium

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]


def test_wall_shows_an_agents_state_change_live_and_filters_by_team(portal: SupervisedPortal) -> None:
    with signed_in(portal, "agent1") as agent1, signed_in(portal, "agent2"), chromium() as browser:
        page = browser.new_context().new_page()
        page.goto(f"{portal.base_url}/login")
        page.fill("#username", "sup1")
        page.fill("#password", PASSWORDS["sup1"])
        page.click("#sign-in")
        page.goto(f"{portal.base_url}/supervision/wall")
        expect(page.locator("#wall-status")).to_have_attribute("data-state", "live")
        row = page.locator('#wall-rows tr[data-login="agent1"]')
        expect(row).to_have_attribute("data-state", "offline")
        expect(page.locator('#wall-summary [data-count="total"]')).to_contain_text("2")

        changed_at = time.monotonic()
        post_form(agent1, "/agent/work-state", "/agent/work-state", state="break", reason="lunch")
        expect(row).to_have_attribute("data-state", "break", timeout=5000)
        latency = time.monotonic() - changed_at
        expect(row.locator("td.state")).to_contain_text("Break (lunch)")
        expect(page.locator('#wall-summary [data-count="break"]')).to_contain_text("1")
        expect(page.locator('#wall-chart rect[data-state="break"]')).not_to_have_attribute("height", "0")

        page.select_option("#filter-team", "Team-South")
        expect(row).to_be_hidden()
        expect(page.locator('#wall-rows tr[data-login="agent2"]')).to_be_visible()
        page.select_option("#filter-team", "")
        page.select_option("#filter-state", "break")
        expect(row).to_be_visible()
        expect(page.locator('#wall-rows tr[data-login="agent2"]')).to_be_hidden()
    assert latency < 3.0, f"the wall showed the change {latency:.2f} s after it was made"
