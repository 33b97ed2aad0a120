"""The second factor over HTTP: the cookie from before it dies with it, and a code is good once.

(A security admin who passed the password but not the code is refused by every privileged route: the route walk,
``tests/gateway/test_route_access.py``, sends every route a request as that caller.)
"""

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyotp
import pytest
from sqlalchemy import Engine
from sqlmodel import col, select

from gateway.audit.models import AuditEvent
from gateway.db import session_scope
from gateway.sessions.deps import SESSION_COOKIE
from tests.gateway.sessions.conftest import GROUPS, PASSWORDS, Portal, csrf_of, page_error, sign_in
from tests.support import portal as whole
from tests.support.clock import MovableClock
from tests.support.portal import passed_second_factor

HTML = {"accept": "text/html"}
JSON = {"accept": "application/json"}


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def portal(tmp_path: Path, db_url: str, engine: Engine, clock: MovableClock) -> Iterator[Portal]:
    with whole.serving_portal(
        tmp_path, db_url, engine, kind=Portal, passwords=PASSWORDS, groups=GROUPS, trusted_proxy=True, clock=clock
    ) as running:
        yield running


def _enrol(portal: Portal, client: httpx.Client, clock: MovableClock) -> tuple[pyotp.TOTP, str]:
    """Sign admin1 in with the password, redeem a one-time enrolment code from the host (a privileged first
    enrolment needs one) and read the enrolment secret: (the authenticator, the page's CSRF)."""
    assert sign_in(client, "admin1").headers["location"] == "/login/second-factor"
    code = whole.enrolment_code(portal.engine, portal.directory, "admin1", clock)
    assert whole.redeem_enrolment_code(client, code).status_code == 303
    page = client.get("/login/second-factor", headers=HTML)
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.text)
    assert secret, page.text
    return pyotp.TOTP(secret.group(1)), csrf_of(page)


def _submit(client: httpx.Client, code: str) -> httpx.Response:
    page = client.get("/login/second-factor", headers=HTML)
    return client.post("/login/second-factor", data={"code": code, "csrf": csrf_of(page)}, headers=HTML)


def _refused_second_factors(portal: Portal) -> int:
    with session_scope(portal.engine) as db:
        rows = db.exec(
            select(AuditEvent).where(
                col(AuditEvent.action) == "session.second_factor", col(AuditEvent.outcome) == "refused"
            )
        )
        return len(rows.all())


def test_the_cookie_from_before_the_second_factor_dies_with_it(portal: Portal, clock: MovableClock) -> None:
    with portal.client() as browser:
        totp, csrf = _enrol(portal, browser, clock)
        before = browser.cookies.get(SESSION_COOKIE)
        done = browser.post("/login/second-factor", data={"code": totp.at(clock()), "csrf": csrf}, headers=HTML)
        assert passed_second_factor(done), done.text
        after = browser.cookies.get(SESSION_COOKIE)
        assert before and after and before != after
    with portal.client() as stale, portal.client() as current:
        stale.cookies.set(SESSION_COOKIE, before)
        current.cookies.set(SESSION_COOKIE, after)
        assert current.get("/security-admin", headers=JSON).status_code == 200
        for path in ("/security-admin", "/security-admin/sessions", "/login/second-factor"):
            refused = stale.get(path, headers=JSON)
            assert (refused.status_code, refused.json()["error"]) == (401, "login_required"), path


def test_a_code_is_good_once_and_the_next_one_is_accepted(portal: Portal, clock: MovableClock) -> None:
    with portal.client() as owner:
        totp, csrf = _enrol(portal, owner, clock)
        code = totp.at(clock())
        assert passed_second_factor(owner.post("/login/second-factor", data={"code": code, "csrf": csrf}))
    with portal.client() as replayer:
        assert sign_in(replayer, "admin1").headers["location"] == "/login/second-factor"
        replayed = _submit(replayer, code)
        assert replayed.status_code == 401
        assert "already used" in page_error(replayed)
        assert _refused_second_factors(portal) == 1
        assert replayer.get("/security-admin", headers=JSON).status_code == 401
        clock.advance(30)  # the authenticator shows the next code
        accepted = _submit(replayer, totp.at(clock()))
        assert accepted.headers.get("location") == "/security-admin", accepted.text
        assert replayer.get("/security-admin", headers=JSON).status_code == 200
