"""The Guacamole (RDP) seat page is the X11 one (seat_page.html, SeatViewer) over guacamole-common-js: it reconnects
by itself when its websocket drops, scales the picture to the window with the mouse still landing where it points,
and carries the bar's work state and sign-out. Real components throughout (test_guacamole_from_portal's set-up):
Chromium, the REAL guacamole-lite (node server.js), the REAL guacd 1.6.0 and an xrdp session.
"""

import re
import time

import httpx
import pytest
from playwright.sync_api import Browser
from sqlmodel import Session, col, select

from gateway.seats.models import LaunchToken, SeatEndReason, SeatLeaseState
from gateway.supervision.models import WorkState, WorkStatus
from tests.desktop_broker.test_guacamole_launch import NodeServer, guacd, log_dir, tap  # noqa: F401
from tests.gateway.seats.conftest import SeatPortal, browser_context, launch_in_browser
from tests.gateway.seats.test_guacamole_from_portal import (  # noqa: F401
    SCREEN,
    agent_connection,
    lease_of,
    node,
    open_app,
    page_matches_seat,
    portal,
    rdp_host,
)
from tests.gateway.voice.conftest import wait_for
from tests.support.guacd import GuacdTap
from tests.support.xrdp import RdpHost

pytestmark = pytest.mark.e2e


def _launches(portal: SeatPortal, login: str) -> list[LaunchToken]:  # noqa: F811
    with Session(portal.engine) as db:
        query = select(LaunchToken).where(LaunchToken.login == login, LaunchToken.backend == "guacamole")
        return list(db.exec(query.order_by(col(LaunchToken.created_at))).all())


def test_a_guacamole_lite_restart_is_reconnected_to_the_same_seat_by_the_page(
    portal: SeatPortal,  # noqa: F811
    node: NodeServer,  # noqa: F811
    rdp_host: RdpHost,  # noqa: F811
    browser: Browser,
    agent1: httpx.Client,
) -> None:
    page, _ = open_app(portal, browser, agent1, rdp_host)
    try:
        lease, launches = lease_of(portal, "agent1"), len(_launches(portal, "agent1"))
        node.restart()  # every websocket it held is closed, as when systemd restarts it or the Wi-Fi drops
        page.wait_for_function("window.seatTimings.reconnects.length === 1", timeout=30_000)
        assert page.get_attribute("#status", "data-state") == "connected"
        deadline = time.monotonic() + 20
        while not page_matches_seat(page, rdp_host):
            assert time.monotonic() < deadline, "the reconnected page never showed the app again"
            time.sleep(0.2)
        reconnected = page.evaluate("window.seatTimings.reconnects[0]")
    finally:
        page.context.close()
    fresh = _launches(portal, "agent1")[launches:]
    print(f"\nguacamole-lite restarted → the page connected again after {reconnected / 1000:.2f} s, {len(fresh)} tries")
    assert lease_of(portal, "agent1").id == lease.id, "the page took a new seat instead of reconnecting to its own"
    # A fresh one-time token per try, each for the same seat; the tries made while server.js was down spent none.
    assert fresh and {token.lease_id for token in fresh} == {lease.id}
    assert [token.used_at is not None for token in fresh] == [False] * (len(fresh) - 1) + [True]


def _work_state(portal: SeatPortal, login: str) -> WorkState | None:  # noqa: F811
    with Session(portal.engine) as db:
        query = select(WorkState).where(WorkState.login == login, col(WorkState.ended_at).is_(None))
        return db.exec(query).first()


def _pointer(host: RdpHost) -> tuple[int, int]:
    found = re.search(rb"x:(\d+) y:(\d+)", host.x_run(["xdotool", "getmouselocation"]).stdout)
    assert found is not None
    return int(found[1]), int(found[2])


def _near(at: tuple[int, int], target: tuple[int, int]) -> bool:
    """Within 2 pixels: the page places the picture on whole CSS pixels, and the seat's pointer is whole pixels."""
    return abs(at[0] - target[0]) <= 2 and abs(at[1] - target[1]) <= 2


def test_the_bar_sets_a_work_state_and_signs_out_and_the_picture_is_scaled_with_the_mouse_mapped(
    portal: SeatPortal,  # noqa: F811
    node: NodeServer,  # noqa: F811
    rdp_host: RdpHost,  # noqa: F811
    browser: Browser,
) -> None:
    with portal.signed_in("agent2") as agent2:
        context = browser_context(portal, browser, agent2, width=1920, height=1080)
        page = context.new_page()
        try:
            launch_in_browser(page, portal, "billing")
            page.wait_for_function("window.seatConnected === true", timeout=20_000)
            # Scaled to the stage like noVNC's scaleViewport: larger than the seat's 1280×800 here, the watermark
            # over the picture, and a pointer at the picture's centre reaches the seat's centre.
            page.wait_for_function("window.guacClient.getDisplay().getScale() > 1.2", timeout=5_000)
            picture = page.locator("[data-seat-picture]").bounding_box()
            mark = page.locator("#watermark").bounding_box()
            stage = page.locator("#stage").bounding_box()
            assert picture is not None and mark is not None and stage is not None
            assert picture["height"] == pytest.approx(stage["height"], abs=1.5)
            assert picture["width"] / picture["height"] == pytest.approx(SCREEN[0] / SCREEN[1], abs=0.01)
            assert all(mark[k] == pytest.approx(picture[k], abs=1) for k in ("x", "y", "width", "height"))
            page.mouse.move(picture["x"] + picture["width"] / 2, picture["y"] + picture["height"] / 2)
            wait_for(lambda: _near(_pointer(rdp_host), (SCREEN[0] // 2, SCREEN[1] // 2)), timeout=5, step=0.2)
            # The work state, as on the X11 seat page.
            page.wait_for_function("document.getElementById('quality').dataset.quality !== 'unknown'", timeout=10_000)
            page.select_option("#state-choice", "break:training")
            page.click("#state-set")
            page.wait_for_function("document.getElementById('work-state').dataset.state === 'break'", timeout=10_000)
            stretch = _work_state(portal, "agent2")
            assert stretch is not None and (stretch.status, stretch.reason) == (WorkStatus.BREAK, "training")
            assert page.text_content("#work-state-label") == "Break (training)"
            # Signing out ends the session and its seat; the page leaves without reconnecting.
            lease = lease_of(portal, "agent2")
            page.click("#sign-out")
            page.wait_for_url("**/login**", timeout=10_000)
        finally:
            context.close()
    wait_for(lambda: lease_of(portal, "agent2").state is SeatLeaseState.ENDED)
    ended = lease_of(portal, "agent2")
    assert (ended.id, ended.end_reason) == (lease.id, SeatEndReason.SESSION_ENDED)


def test_keys_typed_in_the_bar_work_the_bar_and_never_reach_the_seat(
    portal: SeatPortal,  # noqa: F811
    node: NodeServer,  # noqa: F811
    tap: GuacdTap,  # noqa: F811
    rdp_host: RdpHost,  # noqa: F811
    browser: Browser,
) -> None:
    """The page's keyboard listens on the whole document for the seat: without a look at where the focus is, a key
    typed in the bar's state menu went to the remote application and never moved the menu."""
    with portal.signed_in("agent2") as agent2:
        context = browser_context(portal, browser, agent2)
        page = context.new_page()
        try:
            before = len(tap.connections)
            launch_in_browser(page, portal, "billing")
            page.wait_for_function("window.seatConnected === true", timeout=20_000)
            keys_before = agent_connection(tap, before).opcodes_after_ready().count("key")
            page.focus("#state-choice")
            chosen = page.eval_on_selector("#state-choice", "menu => menu.value")
            page.keyboard.press("ArrowDown")
            page.keyboard.type("zq")
            time.sleep(1)
            assert page.eval_on_selector("#state-choice", "menu => menu.value") != chosen, "the menu did not move"
            assert agent_connection(tap, before).opcodes_after_ready().count("key") == keys_before
            # With the focus out of the bar, keys still go to the seat.
            page.evaluate("document.activeElement.blur()")
            page.keyboard.press("Shift")
            wait_for(lambda: agent_connection(tap, before).opcodes_after_ready().count("key") > keys_before, timeout=5)
            # A key held on the seat is let go on the seat, though the focus went to the bar meanwhile (dropped
            # there, Shift stayed down on the remote desktop).
            page.keyboard.down("Control")
            wait_for(lambda: ("key", CONTROL, "1") in _keys(tap, before), timeout=5)
            page.focus("#state-choice")
            page.keyboard.up("Control")
            wait_for(lambda: _keys(tap, before)[-1] == ("key", CONTROL, "0"), timeout=5)
        finally:
            context.close()


CONTROL = "65507"  # X11 keysym Control_L


def _keys(tap: GuacdTap, before: int) -> list[tuple[str, ...]]:  # noqa: F811
    """The key instructions the agent's connection sent guacd, as (opcode, keysym, pressed)."""
    return [tuple(i[:3]) for i in agent_connection(tap, before).after_ready if i[0] == "key"]
