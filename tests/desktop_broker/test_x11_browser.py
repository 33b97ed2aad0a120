"""noVNC in a real Chromium, through the broker's websocket bridge, against real seats: the app is on
the canvas, the clipboard crosses only where the display rules allow, and a supervisor's view-only
password cannot touch the seat."""

import logging
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, Page

from policy.rules import DisplayRules
from tests.desktop_broker.x11_fixtures import (
    NOTHING_ALLOWED,
    RunningSeat,
    bridge_path,
    pointer_location,
    running_seat,
    screen_rgb,
    viewer_page_server,
    wait_for_window,
    websocket_bridge_server,
    x_run,
)

pytestmark = pytest.mark.e2e

CLIPBOARD_ALLOWED = DisplayRules(clipboard_in=True, clipboard_out=True)
QUIET_PERIOD = 3.0  # x11vnc polls the selections about once a second
# x11vnc sends no selection to viewers until 15 s after one connects (sel_waittime, compiled in): a
# "nothing arrived" check made sooner would prove nothing, so clipboard-out checks wait past it.
SEND_DELAY = 16.0
Viewer = Callable[..., Page]


@pytest.fixture(scope="module")
def forbidden_seat() -> Iterator[RunningSeat]:
    with running_seat() as running:
        wait_for_window(running.seat, "^Customer Console")
        yield running


@pytest.fixture(scope="module")
def allowed_seat() -> Iterator[RunningSeat]:
    with running_seat(CLIPBOARD_ALLOWED) as running:
        wait_for_window(running.seat, "^Customer Console")
        yield running


@pytest.fixture(scope="module")
def open_viewer(browser: Browser) -> Iterator[Viewer]:
    """Open a page that connects noVNC to a seat, and wait until the RFB session is up."""
    pages: list[Page] = []
    with viewer_page_server() as http_base, websocket_bridge_server() as ws_base:

        def viewer(seat: RunningSeat, password: str, rules: DisplayRules | None = None) -> Page:
            """`rules` stand for the policy the gateway's relay holds to (default: the seat's own, x11vnc's flags)."""
            page = browser.new_page(viewport={"width": 1300, "height": 850})
            pages.append(page)
            ws = ws_base + bridge_path(seat.seat.rfb_address, password, seat.rules if rules is None else rules)
            page.goto(f"{http_base}/viewer.html?ws={ws}")
            page.wait_for_function("window.connected === true", timeout=10_000)
            return page

        try:
            yield viewer
        finally:
            for page in pages:
                page.close()


def _canvas_colours(page: Page) -> dict[str, int]:
    return page.evaluate(
        """() => {
        const canvas = document.querySelector('#screen canvas');
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let headerBlue = 0; const distinct = new Set();
        for (let i = 0; i < data.length; i += 4) {
            if (data[i] === 0x1f && data[i + 1] === 0x4e && data[i + 2] === 0x79) headerBlue++;
            if (i % 400 === 0) distinct.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
        }
        return {headerBlue, distinct: distinct.size, width: canvas.width};
    }"""
    )


def test_console_reaches_the_browser_canvas(forbidden_seat: RunningSeat, open_viewer: Viewer) -> None:
    page = open_viewer(forbidden_seat, forbidden_seat.passwords.full_access)
    page.wait_for_function(
        "document.querySelector('#screen canvas').getContext('2d').getImageData(20, 30, 1, 1).data[2] === 0x79",
        timeout=10_000,
    )
    colours = _canvas_colours(page)
    assert colours["width"] == 1280
    assert colours["headerBlue"] > 1280 * 40 and colours["distinct"] > 3


def test_novnc_asks_for_its_first_picture_as_the_gateway_already_did(
    forbidden_seat: RunningSeat, open_viewer: Viewer, caplog: pytest.LogCaptureFixture
) -> None:
    """The gateway asks x11vnc for the first picture as noVNC 1.3 will (`rfb_first_update`); were noVNC to ask
    otherwise, the bridge would leave that picture, wait for x11vnc again on a connection of its own, and log it."""
    with caplog.at_level(logging.INFO, logger="desktop_broker.x11.rfb_bridge"):
        page = open_viewer(forbidden_seat, forbidden_seat.passwords.full_access)
        page.wait_for_function(
            "document.querySelector('#screen canvas').getContext('2d').getImageData(20, 30, 1, 1).data[2] === 0x79",
            timeout=10_000,
        )
    assert not [record.getMessage() for record in caplog.records if record.name == "desktop_broker.x11.rfb_bridge"]


def _put_in_seat_clipboard(seat: RunningSeat, text: str, selection: str = "clipboard") -> None:
    # xclip forks to keep owning the selection; its output must not be captured or run() would wait for it
    result = x_run(
        seat.seat,
        ["xclip", "-selection", selection, "-i"],
        as_seat_user=True,
        input=text,
        capture_output=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert result.returncode == 0


def _seat_clipboard(seat: RunningSeat) -> str:
    return x_run(seat.seat, ["xclip", "-selection", "clipboard", "-o"], as_seat_user=True).stdout


def _wait_until(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


@pytest.fixture(scope="module")
def clipboard_viewers(forbidden_seat: RunningSeat, allowed_seat: RunningSeat, open_viewer: Viewer) -> tuple[Page, Page]:
    """A viewer on each seat, connected more than x11vnc's selection send delay ago."""
    forbidden = open_viewer(forbidden_seat, forbidden_seat.passwords.full_access)
    allowed = open_viewer(allowed_seat, allowed_seat.passwords.full_access)
    time.sleep(SEND_DELAY)
    return forbidden, allowed


def test_seat_clipboard_never_reaches_the_browser_when_forbidden(
    forbidden_seat: RunningSeat, clipboard_viewers: tuple[Page, Page]
) -> None:
    page = clipboard_viewers[0]
    _put_in_seat_clipboard(forbidden_seat, "customer-id-4711")
    assert not _wait_until(lambda: bool(page.evaluate("window.clipboardReceived")), QUIET_PERIOD)


def test_seat_clipboard_reaches_the_browser_when_allowed(
    allowed_seat: RunningSeat, clipboard_viewers: tuple[Page, Page]
) -> None:
    page = clipboard_viewers[1]
    _put_in_seat_clipboard(allowed_seat, "customer-id-4712")
    assert _wait_until(lambda: "customer-id-4712" in page.evaluate("window.clipboardReceived"), 5)


def test_the_relay_drops_the_seats_clipboard_when_forbidden_even_if_x11vnc_sends_it(
    allowed_seat: RunningSeat, clipboard_viewers: tuple[Page, Page], open_viewer: Viewer
) -> None:
    """An x11vnc that sends cut text against the rules (one the app replaced, review finding F5) still gets none into
    the browser: the allowed seat's x11vnc sends it to both viewers, and only the relay's rules tell them apart."""
    relay_forbids = open_viewer(allowed_seat, allowed_seat.passwords.full_access, NOTHING_ALLOWED)
    time.sleep(SEND_DELAY)
    _put_in_seat_clipboard(allowed_seat, "customer-id-4714")
    assert _wait_until(lambda: "customer-id-4714" in clipboard_viewers[1].evaluate("window.clipboardReceived"), 5)
    assert relay_forbids.evaluate("window.clipboardReceived") == []
    assert _canvas_colours(relay_forbids)["headerBlue"] > 1000, "the relay stopped passing the pixels"


def test_the_relay_drops_a_paste_when_forbidden_even_if_x11vnc_would_take_it(
    allowed_seat: RunningSeat, open_viewer: Viewer
) -> None:
    page = open_viewer(allowed_seat, allowed_seat.passwords.full_access, NOTHING_ALLOWED)
    page.evaluate("window.rfb.clipboardPasteFrom('home-note-3')")
    assert not _wait_until(lambda: _seat_clipboard(allowed_seat) == "home-note-3", QUIET_PERIOD)
    control = open_viewer(allowed_seat, allowed_seat.passwords.full_access)
    control.evaluate("window.rfb.clipboardPasteFrom('home-note-4')")
    assert _wait_until(lambda: _seat_clipboard(allowed_seat) == "home-note-4", 5)


def test_primary_selection_never_reaches_the_browser_even_when_clipboard_allowed(
    allowed_seat: RunningSeat, clipboard_viewers: tuple[Page, Page]
) -> None:
    page = clipboard_viewers[1]
    _put_in_seat_clipboard(allowed_seat, "highlighted-4713", selection="primary")
    assert not _wait_until(lambda: "highlighted-4713" in page.evaluate("window.clipboardReceived"), QUIET_PERIOD)


def test_browser_paste_never_reaches_the_seat_when_forbidden(forbidden_seat: RunningSeat, open_viewer: Viewer) -> None:
    page = open_viewer(forbidden_seat, forbidden_seat.passwords.full_access)
    page.evaluate("window.rfb.clipboardPasteFrom('home-note-1')")
    assert not _wait_until(lambda: _seat_clipboard(forbidden_seat) == "home-note-1", QUIET_PERIOD)


def test_browser_paste_reaches_the_seat_when_allowed(allowed_seat: RunningSeat, open_viewer: Viewer) -> None:
    page = open_viewer(allowed_seat, allowed_seat.passwords.full_access)
    page.evaluate("window.rfb.clipboardPasteFrom('home-note-2')")
    assert _wait_until(lambda: _seat_clipboard(allowed_seat) == "home-note-2", 5)


def _poke_the_seat(page: Page) -> None:
    """What a viewer does to a seat: move, click on the password field's row, type."""
    page.mouse.move(600, 400)
    page.mouse.click(700, 160)
    page.keyboard.type("12")
    page.mouse.move(820, 350)
    time.sleep(1.0)


def _screen_without_watermark(seat: RunningSeat) -> bytes:
    return screen_rgb(seat.seat)[: 1280 * 3 * 760]


@pytest.mark.parametrize("access, changes", [("view_only", False), ("full_access", True)])
def test_only_the_full_access_password_moves_the_pointer_or_types(
    forbidden_seat: RunningSeat, open_viewer: Viewer, access: str, changes: bool
) -> None:
    x_run(forbidden_seat.seat, ["xdotool", "mousemove", "100", "600"])
    before_pointer, before_screen = pointer_location(forbidden_seat.seat), _screen_without_watermark(forbidden_seat)
    page = open_viewer(forbidden_seat, getattr(forbidden_seat.passwords, access))
    _poke_the_seat(page)
    moved = pointer_location(forbidden_seat.seat) != before_pointer
    drawn = _screen_without_watermark(forbidden_seat) != before_screen
    assert moved is changes and drawn is changes
