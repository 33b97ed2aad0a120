"""The agent's seat page as a remote-desktop client: the real seat scaled to the window, the watermark over its
picture, fullscreen, the status bar (work state, timer, break reasons, urgent bulletins, sign-out) and reconnection.

Module-scoped on SQLite (see ``seat_portal_on_sqlite``): real X11 seats, real noVNC, Chromium.
"""

import time
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from sqlmodel import Session, col, select

from gateway.db import session_scope
from gateway.seats import service
from gateway.seats.models import SeatEndReason, SeatLease
from gateway.sessions.deps import SESSION_COOKIE
from gateway.sessions.models import EndReason, HomeSession, SessionState
from gateway.sessions.service import end_session
from gateway.supervision.bulletins import post_bulletin
from gateway.supervision.models import WorkState, WorkStatus
from tests.gateway.seats.conftest import (
    TWO_APPS_POLICY,
    SeatPortal,
    audit_trail,
    launch_in_browser,
    seat_portal_on_sqlite,
)
from tests.support.untranslated import untranslated_on

pytestmark = pytest.mark.e2e

SEAT_SIZE = (1280, 800)
PICTURE = """() => {
  const canvas = document.querySelector('#screen canvas').getBoundingClientRect();
  const stage = document.getElementById('stage').getBoundingClientRect();
  const mark = document.getElementById('watermark').getBoundingClientRect();
  const page = document.scrollingElement;
  const screen = document.getElementById('screen').firstElementChild;
  return {canvas: [canvas.left, canvas.top, canvas.width, canvas.height],
          stage: [stage.left, stage.top, stage.width, stage.height],
          mark: [mark.left, mark.top, mark.width, mark.height],
          window: [innerWidth, innerHeight],
          pageScroll: [page.scrollWidth, page.scrollHeight],
          screenScroll: [screen.scrollWidth - screen.clientWidth, screen.scrollHeight - screen.clientHeight]};
}"""


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeatPortal]:
    with seat_portal_on_sqlite(tmp_path_factory, "seat-viewer", warm=1, cap=4, policy=TWO_APPS_POLICY) as running:
        yield running


def _seat_page(portal: SeatPortal, browser: Browser, client: httpx.Client, width: int, height: int) -> Page:
    context = browser.new_context(viewport={"width": width, "height": height})
    context.add_cookies([{"name": SESSION_COOKIE, "value": client.cookies[SESSION_COOKIE], "url": portal.base_url}])
    page = context.new_page()
    launch_in_browser(page, portal)
    page.wait_for_function("window.seatConnected === true", timeout=10_000)
    return page


@pytest.fixture(scope="module")
def seat_page(portal: SeatPortal, browser: Browser, agent1: httpx.Client) -> Iterator[Page]:
    page = _seat_page(portal, browser, agent1, 1280, 720)
    yield page
    page.context.close()


def _fitted(page: Page) -> dict[str, list[float]]:
    """The picture's geometry once the canvas has been scaled to the stage (noVNC rescales after the resize)."""
    page.wait_for_function(
        """() => { const c = document.querySelector('#screen canvas').getBoundingClientRect();
                   const s = document.getElementById('stage').getBoundingClientRect();
                   return Math.abs(c.height - s.height) < 1.5 || Math.abs(c.width - s.width) < 1.5; }""",
        timeout=5_000,
    )
    return page.evaluate(PICTURE)  # type: ignore[no-any-return]


@pytest.mark.parametrize("window", [(1280, 720), (1920, 1080)])
def test_the_seat_fills_the_window_without_scrolling(seat_page: Page, window: tuple[int, int]) -> None:
    seat_page.set_viewport_size({"width": window[0], "height": window[1]})
    geometry = _fitted(seat_page)
    left, top, width, height = geometry["canvas"]
    stage_left, stage_top, stage_width, stage_height = geometry["stage"]
    assert geometry["window"] == list(window)
    assert geometry["pageScroll"] == list(window), "the page scrolls"
    assert geometry["screenScroll"] == [0, 0], "the seat's picture scrolls inside its box"
    # The whole seat is visible, at the seat's proportions, as large as the stage allows on its limiting side.
    assert left >= stage_left - 0.5 and top >= stage_top - 0.5
    assert left + width <= stage_left + stage_width + 0.5 and top + height <= stage_top + stage_height + 0.5
    assert abs(width / height - SEAT_SIZE[0] / SEAT_SIZE[1]) < 0.01
    assert height == pytest.approx(stage_height, abs=1.5)  # both windows are wider than the seat: height limits
    assert stage_height >= window[1] - 48, "the status bar takes more than a slim strip"
    # The watermark lies over the picture, not over the black beside it.
    assert geometry["mark"] == pytest.approx(geometry["canvas"], abs=1)


def test_fullscreen_button_takes_the_whole_screen_and_gives_it_back(seat_page: Page) -> None:
    seat_page.click("#fullscreen")
    seat_page.wait_for_function("document.fullscreenElement === document.documentElement", timeout=5_000)
    expect(seat_page.locator("#fullscreen")).to_have_attribute("aria-pressed", "true")  # on fullscreenchange
    seat_page.click("#fullscreen")
    seat_page.wait_for_function("document.fullscreenElement === null", timeout=5_000)
    expect(seat_page.locator("#fullscreen")).to_have_attribute("aria-pressed", "false")


def _work_state(portal: SeatPortal, login: str) -> WorkState | None:
    with Session(portal.engine) as db:
        query = select(WorkState).where(WorkState.login == login, col(WorkState.ended_at).is_(None))
        return db.exec(query).first()


def test_the_status_bar_sets_a_break_with_its_reason_and_times_it(portal: SeatPortal, seat_page: Page) -> None:
    seat_page.wait_for_function("document.getElementById('quality').dataset.quality !== 'unknown'", timeout=10_000)
    assert seat_page.get_attribute("#quality", "data-quality") in {"good", "fair", "poor"}
    assert "on_call" not in seat_page.eval_on_selector_all("#state-choice option", "os => os.map(o => o.value)")
    seat_page.select_option("#state-choice", "break:training")
    seat_page.click("#state-set")
    seat_page.wait_for_function("document.getElementById('work-state').dataset.state === 'break'", timeout=10_000)
    stretch = _work_state(portal, "agent1")
    assert stretch is not None and (stretch.status, stretch.reason) == (WorkStatus.BREAK, "training")
    assert seat_page.text_content("#work-state-label") == "Break (training)"
    assert seat_page.input_value("#state-choice") == "break:training"
    portal.clock.advance(125)  # the timer counts from the gateway's clock, not the browser's
    seat_page.wait_for_function("document.getElementById('state-timer').textContent >= '2:05'", timeout=10_000)
    seat_page.select_option("#state-choice", "ready")
    seat_page.click("#state-set")
    seat_page.wait_for_function("document.getElementById('work-state').dataset.state === 'ready'", timeout=10_000)
    assert seat_page.text_content("#state-timer") in {"0:00", "0:01", "0:02", "0:03", "0:04", "0:05", "0:06"}


def test_an_urgent_bulletin_shows_in_the_bar_and_a_normal_one_does_not(portal: SeatPortal, seat_page: Page) -> None:
    with session_scope(portal.engine) as db:
        now = portal.clock()
        post_bulletin(db, kind="bulletin", title="Canteen", body="Soup", author="sup1", now=now)
        post_bulletin(
            db, kind="bulletin", title="Outage", body="Core network down", author="sup1", now=now, priority="urgent"
        )
        post_bulletin(
            db,
            kind="bulletin",
            title="Night team",
            body="Not for agent1",
            author="sup1",
            now=now,
            priority="urgent",
            audience="night-shift",
        )
    seat_page.wait_for_selector("#urgent:not([hidden])", timeout=10_000)
    text = seat_page.text_content("#urgent") or ""
    assert "Outage: Core network down" in text
    assert "Canteen" not in text and "Night team" not in text


def _connects(portal: SeatPortal) -> int:
    return sum(1 for event in audit_trail(portal, "seat.connect") if event.outcome == "success")


def test_a_dropped_websocket_reconnects_to_the_same_seat(portal: SeatPortal, seat_page: Page) -> None:
    connects_before = _connects(portal)
    seat_page.evaluate("window.rfb._sock._websocket.close()")
    seat_page.wait_for_function("window.seatTimings.reconnects.length === 1", timeout=10_000)
    seat_page.wait_for_function("window.seatConnected === true", timeout=10_000)
    assert seat_page.get_attribute("#status", "data-state") == "connected"
    assert _connects(portal) == connects_before + 1  # a fresh one-time token was minted and spent
    assert seat_page.evaluate("window.seatTimings.reconnects[0]") < 5_000


def _leases_of(portal: SeatPortal, login: str) -> list[SeatLease]:
    """The seat leases of ``login``'s active session."""
    with Session(portal.engine) as db:
        query = select(HomeSession.id).where(HomeSession.login == login, HomeSession.state == SessionState.ACTIVE)
        return list(db.exec(select(SeatLease).where(SeatLease.session_id == db.exec(query).one())))


@pytest.mark.parametrize(
    ("reason", "said"),
    [(SeatEndReason.IDLE, "without activity"), (SeatEndReason.MAX_LENGTH, "maximum length")],
)
def test_a_seat_a_policy_limit_ended_is_not_reopened_by_the_page(
    portal: SeatPortal, browser: Browser, reason: SeatEndReason, said: str
) -> None:
    """Idle timeout and maximum length are policy's limits: the open page must not take a new seat by itself (it
    would undo the limit); it says why the app closed, and the person starts it again from the workspace."""
    with portal.signed_in("agent2") as agent2:
        page = _seat_page(portal, browser, agent2, 1280, 720)
        try:
            (lease,) = [lease for lease in _leases_of(portal, "agent2") if lease.state in service.LIVE]
            with session_scope(portal.engine) as db:
                service.end_seat(db, db.get_one(SeatLease, lease.id), reason, portal.clock())
            portal.broker.reconcile()
            page.wait_for_function("document.getElementById('status').dataset.state === 'ended'", timeout=20_000)
            assert said in (page.text_content("#status") or "")
            assert [other.id for other in _leases_of(portal, "agent2")] == [lease.id], "a new seat was taken"
            refused = [e for e in audit_trail(portal, "seat.reconnect") if e.target == "customer-console"]
            assert refused and refused[-1].outcome == "refused" and reason.value in refused[-1].detail
        finally:
            page.context.close()


def test_an_administrator_ending_the_session_is_said_on_the_seat_page(portal: SeatPortal, browser: Browser) -> None:
    with portal.signed_in("agent2") as agent2:
        page = _seat_page(portal, browser, agent2, 1280, 720)
        try:
            with session_scope(portal.engine) as db:
                query = select(HomeSession).where(
                    HomeSession.login == "agent2", HomeSession.state == SessionState.ACTIVE
                )
                session = db.exec(query).one()
                end_session(db, session, EndReason.ADMIN, actor="admin1", now=portal.clock())
            portal.broker.reconcile()
            page.wait_for_function(
                "document.getElementById('status').dataset.ended === 'ended_by_admin'", timeout=10_000
            )
            assert page.text_content("#status") == "An administrator ended your session."
            assert page.get_attribute("#sign-in-again", "href") == "/login?ended=ended_by_admin"
            page.click("#sign-in-again")
            assert "An administrator ended your session." in (page.text_content("#error") or "")
            assert "certificate" not in (page.text_content("main") or "").lower()
        finally:
            page.context.close()


def test_the_seat_page_speaks_chinese_throughout(portal: SeatPortal, browser: Browser, agent1: httpx.Client) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 720}, locale="zh-CN")
    context.add_cookies(
        [
            {"name": SESSION_COOKIE, "value": agent1.cookies[SESSION_COOKIE], "url": portal.base_url},
            {"name": "sohogw_lang", "value": "zh-CN", "url": portal.base_url},
        ]
    )
    page = context.new_page()
    try:
        launch_in_browser(page, portal)
        page.wait_for_function("window.seatConnected === true", timeout=10_000)
        page.wait_for_function("document.getElementById('quality').dataset.quality !== 'unknown'", timeout=10_000)
        # The urgent bulletin an earlier test posted shows in its author's words, in every language.
        assert untranslated_on(page, shown_data=["Core network down"]) == {}
        assert page.text_content("#fullscreen") == "全屏" and "座席" in (page.get_attribute("#bar", "aria-label") or "")
    finally:
        context.close()


def test_a_seat_that_drops_right_after_each_connection_is_given_up_after_six_such_drops(
    portal: SeatPortal, browser: Browser
) -> None:
    """A connection that drops right after it connected is a flap: a seat that flaps six times in a row (an
    application crashing at start) ends in "ended" instead of a new launch every few hundred milliseconds for ever.
    Before, the page reconnected after every drop, without end."""
    with portal.signed_in("agent2") as agent2:
        page = _seat_page(portal, browser, agent2, 1280, 720)
        try:
            connects_before, drops = _connects(portal), 0
            ended = "document.getElementById('status').dataset.state === 'ended'"
            while drops < 8:
                page.wait_for_function(f"window.seatConnected === true || {ended}", timeout=20_000)
                if page.evaluate(ended):
                    break
                page.evaluate("window.rfb._sock._websocket.close()")
                page.wait_for_function("window.seatConnected === false", timeout=5_000)
                drops += 1
            assert drops == 6, f"ended after {drops} drops, not after six flaps"
            page.wait_for_function(ended, timeout=5_000)
            reconnected = _connects(portal) - connects_before
            time.sleep(2)
            assert _connects(portal) - connects_before == reconnected == 5  # and no more after it said so
        finally:
            page.context.close()
