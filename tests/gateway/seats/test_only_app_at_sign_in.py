"""An agent with one app lands on it at sign-in (``seats.open_only_app``): the sign-in's answer is the seat page.

In Chromium with a real seat: the person types their password, presses "sign in" and sees the application, with no
workspace page and no second click. The sign-in POST is the only request that launches (its form's CSRF check guards
it); the page then stands at ``/agent``, so a reload shows the workspace page instead of posting the password again.
Module-scoped on SQLite (see ``seat_portal_on_sqlite``).
"""

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page
from sqlmodel import Session, select

from gateway.db import session_scope
from gateway.policies.service import import_policy
from gateway.seats.models import SeatLease, SeatLeaseState
from tests.gateway.seats.conftest import TWO_APPS_POLICY, SeatPortal, seat_portal_on_sqlite
from tests.gateway.sessions.conftest import PASSWORDS
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


def _sign_in(page: Page, portal: SeatPortal, login: str) -> None:
    page.goto(portal.base_url + "/login")
    page.fill("#username", login)
    page.fill("#password", PASSWORDS[login])
    page.click("#sign-in")


def test_sign_in_opens_the_only_app_and_a_reload_shows_the_workspace(portal: SeatPortal, browser: Browser) -> None:
    context = browser.new_context(extra_http_headers=portal.proxy_headers("agent1"))
    requests: list[tuple[str, str]] = []
    context.on("request", lambda request: requests.append((request.method, request.url.removeprefix(portal.base_url))))
    try:
        page = context.new_page()
        _sign_in(page, portal, "agent1")
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
        with portal.client() as client:
            headers = portal.proxy_headers("agent2")
            page = client.get("/login", headers=headers)
            form = {"username": "agent2", "password": PASSWORDS["agent2"], "csrf": csrf_of(page)}
            answer = client.post("/login", data=form, headers={**headers, "accept": "text/html"})
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
