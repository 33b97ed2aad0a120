"""A supervisor watches an agent's seat from the wall in Chromium: same pixels, no input, told and audited.

Real seats, real noVNC in Debian's Chromium, the real app (the broker registers its screen viewer at start).
"""

import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Frame, Page, expect
from sqlmodel import Session, col, select

from desktop_broker.pool import PooledSeat
from gateway.audit.models import AuditEvent
from gateway.supervision.models import ScreenWatch
from tests.desktop_broker.x11_fixtures import pointer_location, screen_rgb, wait_for_window, x_run
from tests.gateway.seats.conftest import (
    TWO_APPS_POLICY,
    SeatPortal,
    browser_context,
    launch_in_browser,
    seat_of,
    seat_portal_on_sqlite,
)

pytestmark = pytest.mark.e2e
# Every 16th pixel of every 8th row above the watermark strip (its clock may tick between two reads).
SAMPLE = """(canvas) => { const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, 760).data;
  const out = []; for (let y = 0; y < 760; y += 8) for (let x = 0; x < canvas.width; x += 16) {
    const i = (y * canvas.width + x) * 4; out.push((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]); }
  return [canvas.width, canvas.height, out]; }"""


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeatPortal]:
    with seat_portal_on_sqlite(tmp_path_factory, "view-portal", warm=1, cap=4, policy=TWO_APPS_POLICY) as running:
        yield running


@pytest.fixture(scope="module")
def agent_page(portal: SeatPortal, browser: Browser) -> Iterator[Page]:
    """agent1 launched the Customer Console and sees it."""
    with portal.signed_in("agent1") as agent1:
        context = browser_context(portal, browser, agent1, height=950)
        try:
            page = context.new_page()
            launch_in_browser(page, portal)
            page.wait_for_function("window.seatConnected === true", timeout=10_000)
            wait_for_window(seat_of(portal, "agent1").process, "^Customer Console")
            yield page
        finally:
            context.close()


@pytest.fixture(scope="module")
def supervisor(portal: SeatPortal, browser: Browser) -> Iterator[BrowserContext]:
    with portal.signed_in("sup1") as sup1:
        context = browser_context(portal, browser, sup1, height=950)
        try:
            yield context
        finally:
            context.close()


def _watch_from_the_wall(portal: SeatPortal, supervisor: BrowserContext) -> tuple[Page, Frame]:
    wall = supervisor.new_page()
    wall.goto(portal.base_url + "/supervision/wall")
    with supervisor.expect_page() as opened:
        wall.click("#wall-rows [data-login='agent1'] button.watch", timeout=10_000)
    watch = opened.value
    wall.close()
    frame = watch.wait_for_selector("iframe#screen").content_frame()
    assert frame is not None
    frame.wait_for_function("window.seatConnected === true", timeout=10_000)
    return watch, frame


def _sample(page: Page | Frame) -> list[object]:
    return page.eval_on_selector("#screen canvas", SAMPLE)  # type: ignore[no-any-return]


def _until(check: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


def _screen_above_watermark(seat: PooledSeat) -> bytes:
    return screen_rgb(seat.process)[: 1280 * 3 * 760]


def _watches(portal: SeatPortal) -> list[tuple[str, str, str]]:
    with Session(portal.engine) as db:
        rows = db.exec(
            select(AuditEvent)
            .where(col(AuditEvent.action).startswith("supervision.watch"))
            .order_by(col(AuditEvent.seq))
        ).all()
    return [(e.action, e.actor, e.target, e.outcome) for e in rows]  # type: ignore[misc]


def test_supervisor_sees_the_agents_screen_but_cannot_type_or_click_into_it(
    portal: SeatPortal, agent_page: Page, supervisor: BrowserContext
) -> None:
    seat = seat_of(portal, "agent1")
    watch, frame = _watch_from_the_wall(portal, supervisor)
    assert "agent1" in (frame.text_content("#agent") or "")
    assert frame.get_attribute("#view-only", "id") and frame.is_visible("#view-only")
    assert seat.passwords.view_only not in frame.content() and seat.passwords.full_access not in frame.content()
    agent_pixels = _sample(agent_page)
    assert len(set(agent_pixels[2])) > 3  # type: ignore[arg-type]  # the console, not a blank canvas
    assert _until(lambda: _sample(frame) == _sample(agent_page), 10), "the watcher's canvas differs from the agent's"

    x_run(seat.process, ["xdotool", "mousemove", "100", "600"])
    pointer, screen = pointer_location(seat.process), _screen_above_watermark(seat)
    canvas = frame.query_selector("#screen canvas")
    assert canvas is not None
    box = canvas.bounding_box()
    assert box is not None
    watch.mouse.click(box["x"] + box["width"] * 700 / 1280, box["y"] + box["height"] * 160 / 800)
    watch.keyboard.type("4711")
    watch.mouse.move(box["x"] + 20, box["y"] + 20)
    time.sleep(1.0)
    assert pointer_location(seat.process) == pointer
    assert _screen_above_watermark(seat) == screen, "the watcher's typing reached the seat"

    stage = agent_page.query_selector("#screen canvas").bounding_box()  # type: ignore[union-attr]
    assert stage is not None
    agent_page.mouse.click(stage["x"] + 700, stage["y"] + 160)
    agent_page.keyboard.type("4711")
    assert _until(lambda: _screen_above_watermark(seat) != screen, 5), "the agent's own typing did not arrive"
    assert pointer_location(seat.process) != pointer
    watch.close()
    assert _until(lambda: _watches(portal)[-1][0] == "supervision.watch.end", 5)


def test_the_agent_is_told_and_the_watch_is_audited_from_start_to_the_socket_closing(
    portal: SeatPortal, agent_page: Page, supervisor: BrowserContext
) -> None:
    before = len(_watches(portal))
    watch, _frame = _watch_from_the_wall(portal, supervisor)
    agent_page.wait_for_selector("#watched:not([hidden])", timeout=8_000)
    assert "sup1 is watching your screen" in (agent_page.text_content("#watched") or "")
    assert _watches(portal)[before:] == [("supervision.watch.start", "sup1", "agent1", "started")]
    watch.close()  # no "stop" button pressed: the websocket closing ends the watch
    assert _until(lambda: len(_watches(portal)) == before + 2, 5)
    assert _watches(portal)[-1] == ("supervision.watch.end", "sup1", "agent1", "ended")
    with Session(portal.engine) as db:
        assert all(w.ended_at is not None for w in db.exec(select(ScreenWatch)).all())
    agent_page.wait_for_selector("#watched[hidden]", state="attached", timeout=8_000)


def test_the_wall_offers_watch_for_a_seat_and_its_idle_counter_resets_when_the_agent_types(
    portal: SeatPortal, agent_page: Page, supervisor: BrowserContext
) -> None:
    wall = supervisor.new_page()
    wall.goto(portal.base_url + "/supervision/wall")
    seat = wall.locator("#wall-rows [data-login='agent1'] .seat")
    expect(wall.locator("#wall-rows [data-login='agent1'] button.watch")).to_have_count(1)
    portal.broker.enforce_limits()  # the seats job's pass: it reads the display's idle time
    idle_before = seat.get_attribute("data-idle", timeout=10_000)
    assert idle_before
    time.sleep(11)  # past one 10 s step of the idle start, with no input
    portal.broker.enforce_limits()
    wall.wait_for_timeout(1500)  # a wall tick: nothing typed, so the idle start stays
    assert seat.get_attribute("data-idle") == idle_before
    stage = agent_page.query_selector("#screen canvas").bounding_box()  # type: ignore[union-attr]
    assert stage is not None
    agent_page.mouse.click(stage["x"] + 700, stage["y"] + 160)
    agent_page.keyboard.type("42")

    def the_wall_shows_the_typing() -> bool:
        # the keys travel browser -> websocket -> x11vnc -> Xvfb; under load they can reach the display after one
        # pass of the seats job has read it, so the job runs again until the wall shows a later idle start
        portal.broker.enforce_limits()
        wall.wait_for_timeout(1200)  # one wall tick
        return seat.get_attribute("data-idle") != idle_before

    assert _until(the_wall_shows_the_typing, 15)
    assert (seat.get_attribute("data-idle") or "") > idle_before  # later: idle counts from the typing
    wall.close()
