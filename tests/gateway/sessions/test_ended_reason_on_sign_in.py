"""A person whose session was ended for them (here: their certificate revoked) lands on the sign-in page with the
reason, in their language; a reason made up in the address shows nothing."""

from datetime import UTC, datetime, timedelta

from certs.revocation import HttpRevocationChecker
from gateway.db import session_scope
from gateway.pki import service as pki
from gateway.sessions.revalidation import revalidate
from tests.gateway.sessions.conftest import Portal, sign_in
from tests.support.portal import page_error

HTML = {"accept": "text/html"}


def test_a_session_ended_by_revocation_shows_why_on_the_sign_in_page(portal: Portal) -> None:
    with portal.client() as browser:
        assert sign_in(browser, "agent1", headers=portal.proxy_headers("agent1")).status_code == 303
        assert browser.get("/agent", headers=HTML).status_code == 200
        with session_scope(portal.engine) as db:
            pki.revoke(
                db, portal.authority, f"{portal.certificates['agent1'].serial_number:X}", "keyCompromise",
                actor=pki.Actor("admin"), now=datetime.now(UTC), crl_validity=timedelta(hours=1),
            )  # fmt: skip
        revalidate(portal.engine, portal.directory, portal.authority, HttpRevocationChecker(1), datetime.now(UTC))

        bounced = browser.get("/agent", headers=HTML)
        assert bounced.status_code == 303 and bounced.headers["location"] == "/login?ended=certificate_revoked"
        page = browser.get(bounced.headers["location"], headers=HTML)
        assert "certificate was revoked" in page_error(page)
        chinese = browser.get(bounced.headers["location"], headers=HTML | {"accept-language": "zh-CN"})
        assert "证书已被吊销" in page_error(chinese)


def test_a_signed_out_person_or_a_made_up_reason_gets_a_plain_form(portal: Portal) -> None:
    with portal.client() as browser:
        assert page_error(browser.get("/login?ended=logout", headers=HTML)) == ""
        assert page_error(browser.get("/login?ended=<script>alert(1)</script>", headers=HTML)) == ""
        assert browser.get("/agent", headers=HTML).headers["location"] == "/login"  # never signed in: no reason
