"""The screen wall in Debian's Chromium: ten real seats as live pictures, one view-only connection per seat however
many pages look, a picture that follows its screen, and no way for the grid to send input.

Real X11 seats (Xvfb, x11vnc, the Customer Console), the real broker and its picture reader, Chromium.
"""

import base64
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from sqlmodel import Session, select

from desktop_broker.x11.seat import SeatProcess
from gateway.audit.models import AuditEvent
from gateway.seats.models import SeatLease
from gateway.supervision.monitoring import watchers_told
from tests.desktop_broker.x11_fixtures import screen_rgb, wait_for_window, x_run
from tests.gateway.seats.conftest import (
    TWO_APPS_POLICY,
    SeatPortal,
    browser_context,
    launch,
    seat_of,
    seat_portal_on_sqlite,
)

pytestmark = pytest.mark.e2e
ABOVE_THE_WATERMARK_STRIP = 1280 * 3 * 760
"""The bytes of a seat's RGB screen above the watermark strip, whose clock may tick."""
AGENTS = {f"grid{n:02d}": base64.b64encode(bytes([n]) * 32).decode() for n in range(1, 11)}


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeatPortal]:
    with seat_portal_on_sqlite(
        tmp_path_factory, "screen-wall", warm=1, cap=12, policy=TWO_APPS_POLICY, more_agents=AGENTS
    ) as running:
        yield running


@pytest.fixture(scope="module")
def seated(portal: SeatPortal) -> Iterator[None]:
    """Ten agents signed in, each with the Customer Console open on a seat of its own."""
    with ExitStack() as signed_in:
        for login in AGENTS:
            assert launch(signed_in.enter_context(portal.signed_in(login))).status_code == 200
        for login in AGENTS:
            wait_for_window(seat_of(portal, login).process, "^Customer Console")
        # Each launch connected to its seat for the page that never came (prepared_rfb): those connections close
        # unused after the token's lifetime, so that what the screen wall opens is counted alone.
        deadline = time.monotonic() + portal.broker.settings.launch_token_seconds + 10
        while any(_upstreams(portal, login) for login in AGENTS) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not any(_upstreams(portal, login) for login in AGENTS)
        yield


@pytest.fixture(scope="module")
def supervisor(portal: SeatPortal, browser: Browser) -> Iterator[BrowserContext]:
    with portal.signed_in("sup1") as sup1:
        context = browser_context(portal, browser, sup1, height=1000)
        try:
            yield context
        finally:
            context.close()


def _screen_wall(portal: SeatPortal, context: BrowserContext) -> Page:
    page = context.new_page()
    page.goto(portal.base_url + "/supervision/wall")
    # The first snapshot resizes the head (its status text) and the team filter (its options), which moves the
    # checkbox: a click before it can land where the box was ("clicking the checkbox did not change its state", once
    # in a full run).
    expect(page.locator("#wall-status")).to_have_attribute("data-state", "live", timeout=10_000)
    page.check("#wall-screens")
    expect(page.locator("#screen-grid figure")).to_have_count(len(AGENTS), timeout=10_000)
    expect(page.locator("#screen-grid figure[data-picture='shown']")).to_have_count(len(AGENTS), timeout=20_000)
    return page


def _upstreams(portal: SeatPortal, login: str) -> int:
    """Established TCP connections to the seat's x11vnc (every client: pictures, watches, the agent's browser)."""
    port = seat_of(portal, login).process.rfb_address.port
    listing = subprocess.run(
        ["ss", "-Htn", "state", "established", f"( dport = :{port} )"], capture_output=True, text=True, check=True
    )
    return len(listing.stdout.splitlines())


def _type_until_the_screen_changes(seat: SeatProcess) -> None:
    """Type into the app's field until the seat's own screen shows it (keys sent before Tk has handled the click's
    focus go nowhere, more often on a loaded machine), so that what follows tests the picture, not xdotool."""
    screen = screen_rgb(seat)[:ABOVE_THE_WATERMARK_STRIP]
    deadline = time.monotonic() + 10
    while screen_rgb(seat)[:ABOVE_THE_WATERMARK_STRIP] == screen and time.monotonic() < deadline:
        x_run(seat, ["xdotool", "mousemove", "700", "160", "click", "1", "sleep", "0.3", "type", "4711"])
        time.sleep(0.5)
    assert screen_rgb(seat)[:ABOVE_THE_WATERMARK_STRIP] != screen, "the keys reached no field of the seat's app"


def test_ten_seats_show_live_on_the_screen_wall_one_upstream_each(
    portal: SeatPortal, seated: None, supervisor: BrowserContext
) -> None:
    first, second = _screen_wall(portal, supervisor), _screen_wall(portal, supervisor)
    assert portal.broker.thumbnails.connections() == len(AGENTS)
    assert all(_upstreams(portal, login) == 1 for login in AGENTS)

    figure = first.locator("#screen-grid figure[data-login='grid03']")
    before = figure.locator("img").screenshot()
    seat = seat_of(portal, "grid03").process
    _type_until_the_screen_changes(seat)
    deadline = time.monotonic() + 10
    while figure.locator("img").screenshot() == before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert figure.locator("img").screenshot() != before, "the picture did not follow its seat's screen"

    with Session(portal.engine) as db:
        session_id = str(figure.get_attribute("data-session"))
        assert watchers_told(db, session_id) == ["sup1"]  # the agent is told, as for a watch
        node = db.exec(select(SeatLease.node).where(SeatLease.session_id == session_id)).one()
        # the picture is asked of the node that runs the seat (the balancer routes ?node= there)
        assert f"&node={node}" in str(figure.locator("img").get_attribute("src"))
        starts = db.exec(
            select(AuditEvent).where(AuditEvent.action == "supervision.watch.start", AuditEvent.actor == "sup1")
        ).all()
    assert sorted(event.target for event in starts if '"grid": true' in event.detail) == sorted(AGENTS)
    second.close()
    first.close()


def test_typing_on_the_screen_wall_reaches_no_seat(
    portal: SeatPortal, seated: None, supervisor: BrowserContext
) -> None:
    page = _screen_wall(portal, supervisor)
    seat = seat_of(portal, "grid05").process
    screen = screen_rgb(seat)[:ABOVE_THE_WATERMARK_STRIP]
    figure = page.locator("#screen-grid figure[data-login='grid05']")
    page.click("h1")  # focus on the page itself, off the screens checkbox (a space would untick it)
    figure.hover()
    page.keyboard.type("typed into the grid")
    page.mouse.wheel(0, 200)
    # The picture connection only ever asks for updates: fetch a fresh picture to prove the page kept working.
    loads = int(figure.get_attribute("data-loads") or 0)
    expect(figure).not_to_have_attribute("data-loads", str(loads), timeout=10_000)
    assert screen_rgb(seat)[:ABOVE_THE_WATERMARK_STRIP] == screen, "input from the screen wall reached the seat"
    x_run(seat, ["xdotool", "mousemove", "700", "160", "click", "1", "type", "42"])  # the positive control
    deadline = time.monotonic() + 5
    while screen_rgb(seat)[:ABOVE_THE_WATERMARK_STRIP] == screen and time.monotonic() < deadline:
        time.sleep(0.2)
    assert screen_rgb(seat)[:ABOVE_THE_WATERMARK_STRIP] != screen
    page.close()
