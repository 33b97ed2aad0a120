"""Debian's Chromium driven by Playwright: never `playwright install` (it downloads a browser and fails here)."""

from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import Browser, Page, sync_playwright

from tests.support.components import require_programs

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextmanager
def chromium() -> Iterator[Browser]:
    require_programs(CHROMIUM, install="Debian: chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def sign_in_page(page: Page, login: str, password: str, base_url: str = "") -> None:
    """Sign in through the portal's form as a person does; on return the page the sign-in leads to has loaded (the
    landing page, the second factor's, or the form again with its refusal)."""
    page.goto(f"{base_url}/login")
    page.fill("#username", login)
    page.fill("#password", password)
    with page.expect_navigation():
        page.click("#sign-in")
