"""The wall in Debian's Chromium: tiles update live, filter and sort, timers turn amber then red, "live" is true.

No seat runs in this portal, so no tile offers "watch" (the seat tests show the button where a seat is open).
"""

import time

import pytest
from playwright.sync_api import Page, expect

from gateway.supervision.settings import SupervisionSettings
from tests.gateway.sessions.conftest import PASSWORDS
from tests.gateway.supervision.conftest import SupervisedPortal, post_form, signed_in
from tests.support.browser import chromium, sign_in_page

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]


@pytest.fixture
def supervision() -> SupervisionSettings:
    """A break turns a tile amber after 4.8 s and red after 6 s (the amber stretch is longer than the page's 1 s
    tick, so a tick always lands in it); "not ready" never changes colour."""
    return SupervisionSettings(wall_tick_seconds=0.5, break_max_minutes=0.1, state_limit_minutes={})


def _wall_of_sup1(portal: SupervisedPortal, page: Page) -> None:
    sign_in_page(page, "sup1", PASSWORDS["sup1"], portal.base_url)
    page.goto(f"{portal.base_url}/supervision/wall")
    expect(page.locator("#wall-status")).to_have_attribute("data-state", "live")


def test_wall_shows_an_agents_state_change_live_and_filters_by_team(portal: SupervisedPortal) -> None:
    with signed_in(portal, "agent1") as agent1, signed_in(portal, "agent2"), chromium() as browser:
        page = browser.new_context().new_page()
        _wall_of_sup1(portal, page)
        tile = page.locator('#wall-rows [data-login="agent1"]')
        expect(tile).to_have_attribute("data-state", "offline")
        expect(page.locator('#wall-summary [data-count="total"] b')).to_have_text("2")
        expect(tile.locator("button.watch")).to_have_count(0)  # no seat, nothing to watch

        changed_at = time.monotonic()
        post_form(agent1, "/agent/work-state", "/agent/work-state", state="break", reason="lunch")
        expect(tile).to_have_attribute("data-state", "break", timeout=5000)
        latency = time.monotonic() - changed_at
        expect(tile.locator(".state")).to_contain_text("Break (lunch)")
        expect(page.locator('#wall-summary [data-count="break"] b')).to_have_text("1")
        page.wait_for_function("Chart.getChart('wall-chart').data.datasets[0].data[3] === 1")  # one agent on break
        ticks = page.evaluate("Chart.getChart('wall-chart').scales.y.ticks.map((tick) => tick.value)")
        assert ticks[0] == 0 and 1 in ticks and all(float(tick).is_integer() for tick in ticks)  # a scale in agents

        page.select_option("#filter-team", "Team-South")
        expect(tile).to_be_hidden()
        expect(page.locator('#wall-rows [data-login="agent2"]')).to_be_visible()
        page.select_option("#filter-team", "")
        page.select_option("#filter-state", "break")
        expect(tile).to_be_visible()
        expect(page.locator('#wall-rows [data-login="agent2"]')).to_be_hidden()
    assert latency < 3.0, f"the wall showed the change {latency:.2f} s after it was made"


def test_a_break_tile_turns_amber_then_red_and_sorts_first_by_time_in_state(portal: SupervisedPortal) -> None:
    with signed_in(portal, "agent1"), signed_in(portal, "agent2") as agent2, chromium() as browser:
        page = browser.new_context().new_page()
        _wall_of_sup1(portal, page)
        tiles = page.locator("#wall-rows .tile")
        expect(tiles).to_have_count(2)
        assert tiles.evaluate_all("(all) => all.map((tile) => tile.dataset.login)") == ["agent1", "agent2"]
        # Every level agent2's tile takes, in order, as the page sets it: a poll from here can miss the short amber
        # stretch on a loaded machine.
        page.evaluate(
            """() => {
              window.levels = [];
              const note = () => {
                const tile = document.querySelector('#wall-rows [data-login="agent2"]');
                const level = tile && tile.dataset.state === "break" ? tile.dataset.level : null;
                if (level && window.levels.at(-1) !== level) window.levels.push(level);
              };
              new MutationObserver(note).observe(document.getElementById("wall-rows"), {
                subtree: true, attributes: true, attributeFilter: ["data-level", "data-state"],
              });
            }"""
        )
        post_form(agent2, "/agent/work-state", "/agent/work-state", state="break", reason="rest")
        tile = page.locator('#wall-rows [data-login="agent2"]')
        expect(tile).to_have_attribute("data-state", "break")
        expect(tile).to_have_attribute("data-level", "red", timeout=10_000)
        levels = page.evaluate("window.levels")
        assert levels[-2:] == ["amber", "red"] and set(levels[:-2]) <= {"ok"}, levels  # amber came between
        expect(page.locator('#wall-rows [data-login="agent1"]')).to_have_attribute("data-level", "ok")
        page.select_option("#wall-sort", "state")  # ready, on call, wrap-up, break, then not ready
        assert tiles.evaluate_all("(all) => all.map((tile) => tile.dataset.login)") == ["agent2", "agent1"]
        page.select_option("#wall-sort", "name")
        assert tiles.evaluate_all("(all) => all.map((tile) => tile.dataset.login)") == ["agent1", "agent2"]

        page.click("#wall-fullscreen")
        page.wait_for_function("document.fullscreenElement && document.fullscreenElement.id === 'wallboard'")


def test_the_wall_stops_saying_live_when_the_supervisors_session_ends(portal: SupervisedPortal) -> None:
    with signed_in(portal, "agent1"), chromium() as browser:
        context = browser.new_context()
        page = context.new_page()
        _wall_of_sup1(portal, page)
        other_tab = context.new_page()
        other_tab.goto(f"{portal.base_url}/supervisor")
        other_tab.click("#logout")
        expect(page.locator("#wall-status")).to_have_attribute("data-state", "ended", timeout=8000)
        expect(page.locator("#wall-status")).to_contain_text("Not live")
