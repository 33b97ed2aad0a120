"""A person in Chromium signs in to the portal served over HTTPS by the gateway itself, as each role."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path

import pyotp
import pytest
from cryptography.hazmat.primitives import serialization
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import Engine

from certs.authority import init_authority
from certs.server import issue_server_certificate
from gateway.app import create_app
from gateway.db import session_scope
from gateway.directory import BuiltinDirectory
from gateway.pki import service as pki
from gateway.settings import load_settings
from gateway.web.tls import tls_options
from tests.support.browser import chromium, sign_in_page
from tests.support.portal import enrolment_code
from tests.support.server import serving

pytestmark = pytest.mark.e2e
PASSWORDS = {"agent1": "agent-one-pw", "sup1": "sup-one-pw", "admin1": "admin-one-pw", "hr1": "hr-one-pw"}
GROUPS = {"agent1": "SOHO-Agents", "sup1": "SOHO-Supervisors", "admin1": "SOHO-SecurityAdmins", "hr1": "SOHO-HR"}


def _pem(path: Path, *items: object) -> Path:
    data = b""
    for item in items:
        if hasattr(item, "private_bytes"):
            data += item.private_bytes(  # type: ignore[attr-defined]
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        else:
            data += item.public_bytes(serialization.Encoding.PEM)  # type: ignore[attr-defined]
    path.write_bytes(data)
    return path


@pytest.fixture
def https_portal(tmp_path: Path, db_url: str, engine: Engine) -> Iterator[tuple[str, Path, Path, str]]:
    """The portal over HTTPS with its own server certificate; yields the URL, agent1's certificate and key, and
    admin1's second-factor enrolment code (issued as on the host)."""
    settings = load_settings(data_dir=tmp_path, database_url=db_url, ca={"passphrase": "browser-test"})
    now = datetime.now(UTC)
    authority = init_authority(settings.ca_directory, "browser-test", "Corp Example", now)
    directory = BuiltinDirectory(settings.directory_settings)
    for login, password in PASSWORDS.items():
        directory.add_user(login, password, groups=[GROUPS[login]], display_name=login.title())
    server = issue_server_certificate(authority, ["localhost"], [ip_address("127.0.0.1")], now)
    with session_scope(engine) as db:
        agent = pki.issue_agent_certificate(
            db,
            authority,
            upn="agent1@corp.example",
            account="agent1",
            wireguard_key="xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=",
            person_id=None,
            actor=pki.Actor("test"),
            now=now,
            lifetime=timedelta(days=7),
            urls=pki.publication_urls("http://x"),
        )
    tls = tls_options(
        _pem(tmp_path / "server.crt", server.cert, authority.issuing_cert),
        _pem(tmp_path / "server.key", server.key),
        _pem(tmp_path / "client-cas.pem", authority.issuing_cert, authority.root_cert),
    )
    code = enrolment_code(engine, directory, "admin1")
    app = create_app(settings, engine=engine, authority=authority, directory=directory, run_jobs=False)
    with serving(app, tls=tls) as base_url:
        yield base_url, _pem(tmp_path / "agent1.crt", agent.cert), _pem(tmp_path / "agent1.key", agent.key), code


def _browser_page(browser: Browser, base_url: str, certificate: tuple[Path, Path] | None = None) -> Page:
    client_certificates = (
        [{"origin": base_url, "certPath": str(certificate[0]), "keyPath": str(certificate[1])}] if certificate else []
    )
    context = browser.new_context(ignore_https_errors=True, client_certificates=client_certificates)
    return context.new_page()


def test_each_role_signs_in_in_the_browser(https_portal: tuple[str, Path, Path, str]) -> None:
    base_url, agent_cert, agent_key, admin_code = https_portal
    with chromium() as browser:
        agent = _browser_page(browser, base_url, (agent_cert, agent_key))
        agent.goto(f"{base_url}/login")
        expect(agent.locator("#certificate")).to_contain_text("CN=agent1")
        sign_in_page(agent, "agent1", PASSWORDS["agent1"], base_url)
        expect(agent).to_have_url(f"{base_url}/agent")
        expect(agent.locator("#apps")).to_contain_text("Customer console")

        uncertified = _browser_page(browser, base_url)
        sign_in_page(uncertified, "agent1", PASSWORDS["agent1"], base_url)
        expect(uncertified.locator("#error")).to_contain_text("client certificate is required")

        supervisor = _browser_page(browser, base_url)
        sign_in_page(supervisor, "sup1", PASSWORDS["sup1"], base_url)
        expect(supervisor).to_have_url(f"{base_url}/supervisor")
        expect(supervisor.locator("#live-count")).to_contain_text("1")

        hr = _browser_page(browser, base_url)
        sign_in_page(hr, "hr1", PASSWORDS["hr1"], base_url)
        expect(hr).to_have_url(f"{base_url}/hr")

        admin = _browser_page(browser, base_url)
        sign_in_page(admin, "admin1", PASSWORDS["admin1"], base_url)
        expect(admin).to_have_url(f"{base_url}/login/second-factor")
        expect(admin.locator("#totp-qr")).to_have_count(0)  # the password alone shows no QR code
        admin.fill("#enrolment-code", admin_code)
        admin.click("#redeem")
        secret = admin.locator("#totp-secret").inner_text()
        expect(admin.locator("#totp-qr svg")).to_be_visible()
        admin.fill("#code", "000000" if pyotp.TOTP(secret).now() != "000000" else "111111")
        admin.click("#verify")
        expect(admin.locator("#error")).to_contain_text("wrong")
        admin.fill("#code", pyotp.TOTP(secret).now())
        admin.click("#verify")
        expect(admin.locator("#enrolled")).to_be_visible()
        admin.click("#continue")
        expect(admin).to_have_url(f"{base_url}/security-admin")
        admin.goto(f"{base_url}/security-admin/sessions")
        row = admin.locator("tr[data-login='agent1']")
        expect(row).to_be_visible()
        expect(admin.locator("tr[data-own='true'] .you")).to_have_text("(this is you)")
        row.locator("button").click()  # asked first: declining changes nothing
        expect(admin.locator("#confirm-dialog-question")).to_contain_text("End the session of Agent1 (agent1) now?")
        admin.click("#confirm-dialog-no")
        agent.reload()
        expect(agent).to_have_url(f"{base_url}/agent")
        row.locator("button").click()
        admin.click("#confirm-dialog-yes")
        expect(admin.locator("#notice")).to_contain_text("The session was ended")
        expect(admin.locator("tr[data-login='agent1']")).to_have_count(0)

        agent.reload()
        expect(agent).to_have_url(f"{base_url}/login?ended=ended_by_admin")
        expect(agent.get_by_role("alert")).to_have_text("An administrator ended your session.")
        expect(agent.locator("#certificate")).to_have_count(0)  # nothing about certificates after an admin's end
