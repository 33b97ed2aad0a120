"""A security admin enrols a second factor in Chromium: a QR code a scanner reads (decoded from a screenshot with
zxing-cpp) to the same otpauth URI as the link beside it, an "enrolled" page with recovery codes, no navigation
before the sign-in is complete, and a recovery code that works once instead of a TOTP code."""

import io
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pyotp
import pytest
import zxingcpp
from PIL import Image
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from gateway.audit.models import AuditEvent
from gateway.sessions.models import TotpRecoveryCode
from tests.gateway.sessions.conftest import GROUPS, PASSWORDS, Portal
from tests.support import portal as whole
from tests.support.browser import sign_in_page
from tests.support.clock import MovableClock

pytestmark = pytest.mark.e2e


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def portal(tmp_path: Path, db_url: str, engine: Engine, clock: MovableClock) -> Iterator[Portal]:
    with whole.serving_portal(
        tmp_path, db_url, engine, kind=Portal, passwords=PASSWORDS, groups=GROUPS, trusted_proxy=False, clock=clock
    ) as running:
        yield running


def _password(page: Page, portal: Portal) -> None:
    sign_in_page(page, "admin1", PASSWORDS["admin1"], portal.base_url)
    expect(page).to_have_url(f"{portal.base_url}/login/second-factor")
    expect(page.locator("header nav")).to_have_count(0)  # no links that would lead back here


def _recovery_audit(portal: Portal) -> list[str]:
    with Session(portal.engine) as db:
        query = select(AuditEvent).where(AuditEvent.action == "totp.recovery_code").order_by(col(AuditEvent.seq))
        return [event.outcome for event in db.exec(query)]


def _sign_out(page: Page) -> None:
    page.click("#logout")
    expect(page.locator("#sign-in")).to_be_visible()


def test_enrol_by_scanning_the_qr_code_then_sign_in_once_with_a_recovery_code(
    portal: Portal, browser: Browser, clock: MovableClock
) -> None:
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    _password(page, portal)
    page.fill("#enrolment-code", whole.enrolment_code(portal.engine, portal.directory, "admin1", clock))
    page.click("#redeem")

    qr = page.locator("#totp-qr")
    expect(qr).to_be_visible()
    assert page.get_attribute("#totp-qr svg", "viewBox") is not None
    box, drawn = qr.bounding_box(), page.locator("#totp-qr svg").bounding_box()
    assert box and drawn and drawn["width"] <= box["width"] + 0.5 and drawn["height"] <= box["height"] + 0.5
    scanned = zxingcpp.read_barcodes(Image.open(io.BytesIO(qr.screenshot())))
    assert len(scanned) == 1, "the QR code on the page cannot be read"
    uri = scanned[0].text
    assert uri == page.get_attribute("#otpauth-link", "href")
    assert urlparse(uri).scheme == "otpauth" and urlparse(uri).netloc == "totp"
    secret = parse_qs(urlparse(uri).query)["secret"][0]
    assert secret == page.inner_text("#totp-secret")

    page.fill("#code", pyotp.TOTP(secret).at(clock()))
    page.click("#verify")
    expect(page.locator("#enrolled")).to_be_visible()
    codes = page.locator("#recovery-codes code").all_inner_texts()
    assert len(codes) == 10 and len(set(codes)) == 10
    expect(page.locator("header nav")).to_have_count(0)
    with Session(portal.engine) as db:
        stored = [row.code_sha256 for row in db.exec(select(TotpRecoveryCode))]
    assert len(stored) == 10 and not set(codes) & set(stored)  # only their hashes are kept
    page.click("#continue")
    expect(page).to_have_url(f"{portal.base_url}/security-admin")
    expect(page.locator("header nav")).to_be_visible()
    _sign_out(page)

    clock.advance(60)
    _password(page, portal)
    page.fill("#code", codes[3].lower())  # typed as a person might: case and dashes do not matter
    page.click("#verify")
    expect(page).to_have_url(f"{portal.base_url}/security-admin")
    _sign_out(page)

    _password(page, portal)
    page.fill("#code", codes[3])
    page.click("#verify")
    expect(page.locator("#error")).to_be_visible()  # used once: refused the second time
    expect(page.locator("#code")).to_be_visible()
    assert _recovery_audit(portal) == ["issued", "used", "refused"]
    page.context.close()
