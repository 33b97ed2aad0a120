"""The reports in Debian's Chromium: stacked state-over-time charts (Chart.js from the gateway's own origin) home and
on-site on one h:mm scale, per-agent bars, a date picker, and a bad date answered inline in the person's language."""

import re

import pytest
from playwright.sync_api import expect

from tests.gateway.sessions.conftest import PASSWORDS
from tests.gateway.supervision.conftest import SupervisedPortal, post_form, signed_in
from tests.support.browser import chromium, sign_in_page

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]
CHART = """(id) => { const chart = Chart.getChart(id); return {
  labels: chart.data.labels.length,
  sums: Object.fromEntries(chart.data.datasets.map((d) => [d.label, d.data.reduce((a, b) => a + b, 0)])),
  ticks: chart.scales[chart.options.indexAxis === 'y' ? 'x' : 'y'].ticks.map((t) => t.label),
  max: chart.scales[chart.options.indexAxis === 'y' ? 'x' : 'y'].max }; }"""


def test_reports_draw_state_over_time_with_an_h_mm_scale_from_the_gateways_origin(portal: SupervisedPortal) -> None:
    with signed_in(portal, "agent1") as agent1, signed_in(portal, "agent2"), chromium() as browser:
        post_form(agent1, "/agent/work-state", "/agent/work-state", state="break", reason="lunch")
        page = browser.new_context().new_page()
        origins: set[str] = set()
        page.on("request", lambda request: origins.add(re.sub(r"^(https?://[^/]+).*", r"\1", request.url)))
        sign_in_page(page, "sup1", PASSWORDS["sup1"], portal.base_url)
        page.goto(f"{portal.base_url}/supervision/reports")
        page.wait_for_function("window.Chart && Chart.getChart('chart-home') && Chart.getChart('chart-agents')")
        home = page.evaluate(CHART, "chart-home")
        on_site = page.evaluate(CHART, "chart-on-site")
        agents = page.evaluate(CHART, "chart-agents")
    assert origins == {portal.base_url}  # Chart.js too: no CDN
    assert home["labels"] == 48  # a day in 30-minute steps
    assert home["sums"]["Break"] > 0 and home["sums"]["Not ready"] > 0 and on_site["sums"]["Break"] == 0
    assert all(re.fullmatch(r"\d+:\d\d", tick) for tick in home["ticks"] + agents["ticks"]), home["ticks"]
    assert home["max"] == on_site["max"]  # home and on-site side by side on one scale
    assert agents["labels"] == 2 and agents["sums"]["Break"] > 0


def test_a_bad_date_is_answered_on_the_page_in_the_persons_language(portal: SupervisedPortal) -> None:
    with chromium() as browser:
        page = browser.new_context().new_page()
        sign_in_page(page, "sup1", PASSWORDS["sup1"], portal.base_url)
        answer = page.goto(f"{portal.base_url}/supervision/reports?period=month&day=2026-02-31&step=15")
        assert answer is not None and answer.status == 422
        expect(page.locator("#error")).to_contain_text("“2026-02-31” is not a date")
        expect(page.locator("#report-period")).to_have_value("month")  # what was chosen is kept
        expect(page.locator("#report-step")).to_have_value("15")
        expect(page.locator("#report-day")).to_have_attribute("aria-invalid", "true")

        page.fill("#report-day", "2026-12-01")  # the date picker's value
        page.click("#report-form button[type=submit]")
        expect(page.locator("h1")).to_contain_text("2026-12")
        expect(page.locator("#error")).to_have_count(0)

        page.goto(f"{portal.base_url}/lang/zh-CN")
        page.goto(f"{portal.base_url}/supervision/reports?day=not-a-day")
        expect(page.locator("#error")).to_contain_text("“not-a-day”不是有效日期")
