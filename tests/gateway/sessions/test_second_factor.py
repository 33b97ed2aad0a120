"""The second factor: a password alone neither throws the person's live session out nor resets the guess limit."""

import re

import httpx
import pyotp
from sqlmodel import select

from gateway.db import session_scope
from gateway.sessions.models import HomeSession, SessionState
from tests.gateway.sessions.conftest import PASSWORDS, Portal, csrf_of, page_error, sign_in
from tests.support.portal import enrolment_code, passed_second_factor, redeem_enrolment_code

HTML = {"accept": "text/html"}


def _enrolled_admin(portal: Portal, client: httpx.Client) -> pyotp.TOTP:
    assert sign_in(client, "admin1").headers["location"] == "/login/second-factor"
    code = enrolment_code(portal.engine, portal.directory, "admin1")
    assert redeem_enrolment_code(client, code).headers["location"] == "/login/second-factor"
    page = client.get("/login/second-factor", headers=HTML)
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.text)
    assert secret, page.text
    totp = pyotp.TOTP(secret.group(1))
    done = client.post("/login/second-factor", data={"code": totp.now(), "csrf": csrf_of(page)}, headers=HTML)
    assert passed_second_factor(done), done.text
    return totp


def _wrong_code(client: httpx.Client, totp: pyotp.TOTP) -> httpx.Response:
    page = client.get("/login/second-factor", headers=HTML)
    wrong = "000000" if totp.now() != "000000" else "111111"
    return client.post("/login/second-factor", data={"code": wrong, "csrf": csrf_of(page)}, headers=HTML)


def _states(portal: Portal) -> list[str]:
    with session_scope(portal.engine) as db:
        return sorted(s.state for s in db.exec(select(HomeSession).where(HomeSession.login == "admin1")))


def test_password_alone_does_not_end_the_live_session(portal: Portal) -> None:
    with portal.client() as first, portal.client() as intruder:
        _enrolled_admin(portal, first)
        assert sign_in(intruder, "admin1").headers["location"] == "/login/second-factor"
        assert _states(portal) == [SessionState.ACTIVE, SessionState.PENDING_SECOND_FACTOR]
        assert first.get("/security-admin", headers=HTML).status_code == 200


def test_second_factor_guesses_count_across_fresh_password_logins(portal: Portal) -> None:
    with portal.client() as owner:
        totp = _enrolled_admin(portal, owner)
    with portal.client() as intruder:
        for attempt in range(5):
            if attempt % 2 == 0:  # signing in again must not wipe the count
                assert sign_in(intruder, "admin1").status_code == 303
            assert _wrong_code(intruder, totp).status_code == 401
        assert sign_in(intruder, "admin1").status_code == 429
        assert "Too many" in page_error(sign_in(intruder, "ADMIN1", PASSWORDS["admin1"]))  # one person, any case
