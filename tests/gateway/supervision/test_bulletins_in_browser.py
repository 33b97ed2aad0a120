"""Bulletins in Debian's Chromium: a supervisor posts one with a priority and an expiry (a wrong expiry refused on
the page with the text kept), edits it, and removes it after confirming; agents see what is current."""

import pytest
from playwright.sync_api import expect

from tests.gateway.sessions.conftest import PASSWORDS
from tests.gateway.supervision.conftest import SupervisedPortal, post_form, signed_in
from tests.support.browser import chromium, sign_in_page
from tests.support.untranslated import untranslated_on

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]


def test_a_supervisor_posts_edits_and_removes_an_urgent_bulletin(portal: SupervisedPortal) -> None:
    with chromium() as browser:
        page = browser.new_context(base_url=portal.base_url, locale="en-US").new_page()
        sign_in_page(page, "sup1", PASSWORDS["sup1"])
        page.goto("/supervision/bulletins")
        form = page.locator("#post-bulletin")
        form.locator("input[name=title]").fill("Network outage")
        form.locator("textarea[name=body]").fill("Core network down in the east; use the fallback script.")
        page.select_option("#new-priority", "urgent")
        page.fill("#new-valid-hours", "soon")
        page.click("#post")
        expect(page.locator("#error")).to_contain_text('"Valid for" must be a number of hours')
        assert form.locator("input[name=title]").input_value() == "Network outage"
        assert page.input_value("#new-priority") == "urgent"
        page.fill("#new-valid-hours", "4")
        page.click("#post")
        expect(page.locator("#notice")).to_contain_text("The bulletin was saved")
        item = page.locator("article[data-priority='urgent']")
        expect(item).to_contain_text("Urgent")
        expect(item).to_contain_text("until ")

        item.locator("summary").click()
        item.locator("form.card input[name=title]").fill("Network outage (east)")
        item.locator("form.card select[name=priority]").select_option("normal")
        item.locator("form.card button").click()
        expect(page.locator("article[data-priority='normal'] h3")).to_contain_text("Network outage (east)")
        with signed_in(portal, "agent1") as agent:
            assert "Network outage (east)" in agent.get("/agent/bulletins").text

        page.locator("article form.remove button").click()
        page.click("#confirm-dialog-no")
        expect(page.locator("article[data-bulletin]")).to_have_count(1)
        page.locator("article form.remove button").click()
        page.click("#confirm-dialog-yes")
        expect(page.locator("#notice")).to_contain_text("The bulletin was removed")
        expect(page.locator("article[data-bulletin]")).to_have_count(0)
        with signed_in(portal, "agent1") as agent:
            assert "Network outage" not in agent.get("/agent/bulletins").text


def test_the_supervisors_pages_show_no_english_in_chinese(portal: SupervisedPortal) -> None:
    with signed_in(portal, "sup1") as supervisor, chromium() as browser:
        post_form(
            supervisor, "/supervision/bulletins", "/supervision/bulletins", title="停电", body="东区", priority="urgent"
        )
        context = browser.new_context(base_url=portal.base_url, locale="zh-CN")
        context.add_cookies([{"name": "sohogw_lang", "value": "zh-CN", "url": portal.base_url}])
        page = context.new_page()
        sign_in_page(page, "sup1", PASSWORDS["sup1"])
        for path in ("/supervisor", "/supervision/bulletins", "/supervision/surge", "/supervision/alerts"):
            page.goto(path)
            assert untranslated_on(page) == {}, path
            assert "坐席" not in page.inner_text("body")
