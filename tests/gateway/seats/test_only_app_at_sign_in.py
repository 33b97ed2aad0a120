"""An agent with one app lands on it at sign-in (``seats.open_only_app``): the sign-in's answer is the seat page.

In Chromium with a real seat: the person types their password, presses "sign in" and sees the application, with no
workspace page and no second click. The sign-in POST is the only request that launches (its form's CSRF check guards
it); the page then stands at ``/agent``, so a reload shows the workspace page instead of posting the password again.
Module-scoped on SQLite (see ``seat_portal_on_sqlite``).
"""

import sqlite3
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser
from sqlmodel import Session, select

from gateway.db import session_scope
from gateway.policies.service import import_policy
from gateway.seats.errors import NoSeatFree
from gateway.seats.models import SeatLease, SeatLeaseState
from gateway.sessions.models import HomeSession
from tests.gateway.seats.conftest import TWO_APPS_POLICY, SeatPortal, seat_portal_on_sqlite
from tests.gateway.sessions.conftest import PASSWORDS
from tests.support.browser import sign_in_page
from tests.support.portal import csrf_of

pytestmark = pytest.mark.e2e

FRAME_SHOWN = """() => { const c = document.querySelector('#screen canvas');
    if (!c || !c.width) return false;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let i = 0; i < d.length; i += 4 * 97) if (d[i] || d[i + 1] || d[i + 2]) return true;
    return false; }"""
"""The seat's canvas holds a non-black pixel: the application's first frame has been drawn."""


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeatPortal]:
    with seat_portal_on_sqlite(
        tmp_path_factory, "only-app", warm=1, cap=4, policy=TWO_APPS_POLICY, open_only_app=True
    ) as running:
        yield running


def _leases(portal: SeatPortal, login: str) -> list[SeatLease]:
    with Session(portal.engine) as db:
        return list(db.exec(select(SeatLease).where(SeatLease.login == login)))


def _sign_in_posted(portal: SeatPortal, login: str) -> httpx.Response:
    """The sign-in form posted as a browser behind the proxy does, with `login`'s certificate and password."""
    with portal.client() as client:
        headers = portal.proxy_headers(login)
        page = client.get("/login", headers=headers)
        form = {"username": login, "password": PASSWORDS[login], "csrf": csrf_of(page)}
        return client.post("/login", data=form, headers={**headers, "accept": "text/html"})


def test_sign_in_opens_the_only_app_and_a_reload_shows_the_workspace(portal: SeatPortal, browser: Browser) -> None:
    context = browser.new_context(extra_http_headers=portal.proxy_headers("agent1"))
    requests: list[tuple[str, str]] = []
    context.on("request", lambda request: requests.append((request.method, request.url.removeprefix(portal.base_url))))
    try:
        page = context.new_page()
        sign_in_page(page, "agent1", PASSWORDS["agent1"], portal.base_url)
        page.wait_for_function("window.seatConnected === true", timeout=10_000)
        page.wait_for_function(FRAME_SHOWN, timeout=10_000)
        assert page.url == portal.base_url + "/agent"  # the address bar, not the sign-in POST's
        assert ("POST", "/agent/apps/customer-console/launch") not in requests  # the sign-in itself launched
        assert ("GET", "/agent") not in requests  # no workspace page on the way
        (lease,) = _leases(portal, "agent1")
        assert lease.app_id == "customer-console" and lease.state is SeatLeaseState.CONNECTED
        requests.clear()
        page.reload()
        page.wait_for_selector('li[data-app="customer-console"] button')
        assert requests[0] == ("GET", "/agent")  # the reload asks for the workspace page, never re-posts the sign-in
        assert [lease.id for lease in _leases(portal, "agent1")] == [lease.id]
    finally:
        context.close()


def test_a_refused_sign_in_launches_nothing(portal: SeatPortal) -> None:
    """A sign-in POST whose form token does not match its cookie (what another site's form would send) is refused
    before anything is launched, and so is a wrong password."""
    with portal.client() as client:
        headers = portal.proxy_headers("agent2")
        client.get("/login", headers=headers)
        forged = {"username": "agent2", "password": PASSWORDS["agent2"], "csrf": "from-another-site"}
        assert client.post("/login", data=forged, headers={**headers, "accept": "text/html"}).status_code == 403
        page = client.get("/login", headers=headers)
        wrong = {"username": "agent2", "password": "not-the-password", "csrf": csrf_of(page)}
        assert client.post("/login", data=wrong, headers={**headers, "accept": "text/html"}).status_code == 401
    assert _leases(portal, "agent2") == []


def test_an_agent_with_two_apps_lands_on_the_workspace_page(portal: SeatPortal) -> None:
    both = TWO_APPS_POLICY.replace("apps: [customer-console]", "apps: [customer-console, supervisor-console]")
    with session_scope(portal.engine) as db:
        import_policy(db, both, actor="test", source="", now=portal.clock())
    try:
        answer = _sign_in_posted(portal, "agent2")
        assert answer.status_code == 303 and answer.headers["location"] == "/agent"
        assert _leases(portal, "agent2") == []
    finally:
        with session_scope(portal.engine) as db:
            import_policy(db, TWO_APPS_POLICY, actor="test", source="", now=portal.clock())


def test_a_supervisor_with_one_app_lands_on_their_own_page(portal: SeatPortal) -> None:
    with portal.client() as client:
        page = client.get("/login")
        answer = client.post("/login", data={"username": "sup1", "password": PASSWORDS["sup1"], "csrf": csrf_of(page)})
    assert answer.status_code == 303 and answer.headers["location"] == "/supervisor"
    assert _leases(portal, "sup1") == []


def test_the_sign_in_is_committed_before_the_seat_starts(portal: SeatPortal, monkeypatch: pytest.MonkeyPatch) -> None:
    """Starting a seat can take a cold start or a stop of another; the sign-in's rows (its audit row holds the chain's
    head, on SQLite the one write lock) are committed before it, so nobody else's sign-in or audited action waits on
    it. Seen from another connection while the broker assigns the seat: the new session is there and a write goes in."""
    seen: dict[str, Any] = {}
    assign = portal.broker.assign

    def assign_and_look(*args: Any, **kwargs: Any) -> tuple[str, str]:
        path = str(portal.engine.url.database)
        other = sqlite3.connect(path, timeout=0)  # another writer that does not wait
        try:
            seen["sessions"] = other.execute("SELECT count(*) FROM home_session WHERE login = 'agent2'").fetchone()[0]
            try:
                other.execute("BEGIN IMMEDIATE")
                other.execute("ROLLBACK")
                seen["write"] = "went in"
            except sqlite3.OperationalError as error:
                seen["write"] = str(error)
        finally:
            other.close()
        return assign(*args, **kwargs)

    with Session(portal.engine) as db:
        before = len(db.exec(select(HomeSession).where(HomeSession.login == "agent2")).all())
    monkeypatch.setattr(portal.broker, "assign", assign_and_look)
    answer = _sign_in_posted(portal, "agent2")
    assert answer.status_code == 200 and 'id="screen"' in answer.text
    assert seen == {"sessions": before + 1, "write": "went in"}
    (lease,) = [lease for lease in _leases(portal, "agent2") if lease.state is not SeatLeaseState.ENDED]
    assert lease.app_id == "customer-console"


def test_a_refused_landing_also_stands_at_the_workspace_address(
    portal: SeatPortal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node with no seat free refuses the landing's launch: that page, too, puts `/agent` in the address bar, so a
    reload does not post the sign-in form (and its password) again."""

    def full(*args: Any, **kwargs: Any) -> tuple[str, str]:
        raise NoSeatFree("every seat of this node is taken")

    monkeypatch.setattr(portal.broker, "assign", full)
    answer = _sign_in_posted(portal, "agent1")
    assert answer.status_code == NoSeatFree.status_code and 'id="refusal"' in answer.text
    assert 'history.replaceState(null, "", "/agent")' in answer.text
