"""One click in the portal, the agent application in Chromium: real seats, real noVNC, the broker as the gate.

Module-scoped on SQLite (see ``seat_portal_on_sqlite``).
"""

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page
from sqlmodel import Session, col, select
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from desktop_broker.pool import PooledSeat
from desktop_broker.x11 import watermark
from gateway.db import session_scope
from gateway.policies.service import import_policy
from gateway.seats.models import SeatEndReason, SeatLease, SeatLeaseState
from gateway.sessions.deps import SESSION_COOKIE
from tests.desktop_broker.test_x11_browser import (
    QUIET_PERIOD,
    SEND_DELAY,
    _put_in_seat_clipboard,
    _seat_clipboard,
    _wait_until,
)
from tests.desktop_broker.x11_fixtures import RunningSeat, pixels_near, screen_rgb, wait_for_window, watermark_text
from tests.gateway.seats.conftest import (
    TWO_APPS_POLICY,
    SeatPortal,
    audit_trail,
    browser_context,
    launch,
    launch_in_browser,
    launch_token,
    seat_portal_on_sqlite,
)
from tests.gateway.sessions.conftest import csrf_of

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeatPortal]:
    with seat_portal_on_sqlite(tmp_path_factory, "seat-portal", warm=1, cap=4, policy=TWO_APPS_POLICY) as running:
        yield running


def _open_seat(portal: SeatPortal, browser: Browser, client: httpx.Client) -> Page:
    page = browser_context(portal, browser, client).new_page()
    launch_in_browser(page, portal)
    page.wait_for_function("window.seatConnected === true", timeout=10_000)
    return page


@pytest.fixture(scope="module")
def seat_page(portal: SeatPortal, browser: Browser, agent1: httpx.Client) -> Iterator[Page]:
    page = _open_seat(portal, browser, agent1)
    yield page
    page.context.close()


def _lease(portal: SeatPortal, login: str) -> SeatLease:
    with Session(portal.engine) as db:
        lease = db.exec(
            select(SeatLease).where(SeatLease.login == login).order_by(col(SeatLease.started_at).desc())
        ).first()
    assert lease is not None
    return lease


def _seat(portal: SeatPortal, login: str) -> PooledSeat:
    seat = portal.broker.pool.get(_lease(portal, login).seat_id) if portal.broker.pool else None
    assert seat is not None, f"{login} holds no running seat"
    return seat


def test_agent_sees_only_the_apps_published_to_them(portal: SeatPortal, agent1: httpx.Client) -> None:
    page = agent1.get("/agent")
    assert re.findall(r'data-app="([^"]+)"', page.text) == ["customer-console"]
    refused = launch(agent1, "supervisor-console")
    assert refused.status_code == 403 and 'data-reason="seat.app_not_published"' in refused.text
    last = audit_trail(portal, "seat.launch")[-1]
    assert (last.actor, last.target, last.outcome) == ("agent1", "supervisor-console", "refused")


def test_launch_puts_the_console_on_the_seat_and_its_pixels_on_the_canvas(portal: SeatPortal, seat_page: Page) -> None:
    seat = _seat(portal, "agent1")
    wait_for_window(seat.process, "^Customer Console")
    seat_page.wait_for_function(
        "document.querySelector('#screen canvas').getContext('2d').getImageData(20, 30, 1, 1).data[2] === 0x79",
        timeout=10_000,
    )
    distinct = seat_page.evaluate(
        """() => { const c = document.querySelector('#screen canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; const s = new Set();
        for (let i = 0; i < d.length; i += 400) s.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]); return s.size; }"""
    )
    assert distinct > 3
    assert _lease(portal, "agent1").state is SeatLeaseState.CONNECTED


def test_the_browser_never_holds_the_seat_password(portal: SeatPortal, seat_page: Page) -> None:
    seat = _seat(portal, "agent1")
    assert seat.passwords.full_access not in seat_page.content()
    assert seat.passwords.view_only not in seat_page.content()


def test_watermark_names_the_agent_on_the_page_and_on_the_display(portal: SeatPortal, seat_page: Page) -> None:
    assert "agent1 · " in (seat_page.text_content("#watermark") or "")
    seat = _seat(portal, "agent1")
    assert watermark_text(seat.process).startswith("agent1 \u00b7 ")
    rgb = screen_rgb(seat.process)
    yellow = tuple(int(watermark.TEXT_COLOUR[i : i + 2], 16) for i in (1, 3, 5))
    assert pixels_near(rgb, 1280, range(800 - watermark.STRIP_HEIGHT, 800), yellow) > 500  # type: ignore[arg-type]


def test_clipboard_crosses_neither_way(portal: SeatPortal, seat_page: Page) -> None:
    seat = _seat(portal, "agent1")
    running = RunningSeat(seat.process, seat.passwords, Path("/"))
    assert seat_page.evaluate("document.getElementById('seat-script').dataset.clipboardOut") == "forbidden"
    # The page keeps no cut text when the policy forbids it; noVNC's own event shows what the gateway let through.
    seat_page.evaluate(
        "window.fromTheWire = [];"
        "window.rfb.addEventListener('clipboard', (event) => window.fromTheWire.push(event.detail.text))"
    )
    time.sleep(SEND_DELAY)  # x11vnc sends no selection until 15 s after a viewer connects
    _put_in_seat_clipboard(running, "customer-id-4711")
    received = "window.fromTheWire.concat(window.clipboardReceived)"
    assert not _wait_until(lambda: bool(seat_page.evaluate(received)), QUIET_PERIOD)
    seat_page.evaluate("window.rfb.clipboardPasteFrom('home-note-1')")
    assert not _wait_until(lambda: _seat_clipboard(running) == "home-note-1", QUIET_PERIOD)


def _open_socket(portal: SeatPortal, token: str, cookie: str) -> None:
    url = portal.base_url.replace("http", "ws") + f"/seats/ws?token={token}"
    with connect(url, additional_headers={"Cookie": f"{SESSION_COOKIE}={cookie}"}, open_timeout=5) as socket:
        socket.recv(timeout=5)


def test_a_stolen_replayed_or_altered_token_is_refused_and_audited(portal: SeatPortal, agent1: httpx.Client) -> None:
    token = launch_token(agent1)
    with portal.signed_in("agent2") as agent2, pytest.raises(InvalidStatus):
        _open_socket(portal, token, agent2.cookies[SESSION_COOKIE])
    with pytest.raises(InvalidStatus):
        _open_socket(portal, token, agent1.cookies[SESSION_COOKIE])
    fresh = launch_token(agent1)
    with pytest.raises(InvalidStatus):
        _open_socket(portal, fresh[:-2] + ("AA" if not fresh.endswith("AA") else "BB"), agent1.cookies[SESSION_COOKIE])
    refusals = [(e.actor, e.outcome, e.detail) for e in audit_trail(portal, "seat.connect") if e.outcome == "refused"]
    assert [actor for actor, _, _ in refusals[-3:]] == ["agent2", "agent1", "agent1"]
    assert "another person" in refusals[-3][2] and "already used" in refusals[-2][2] and "unknown" in refusals[-1][2]
    assert _seat(portal, "agent1").holder == _lease(portal, "agent1").id  # the seat stayed agent1's


def test_idle_timeout_from_an_imported_policy_ends_the_seat(portal: SeatPortal) -> None:
    with session_scope(portal.engine) as db:
        import_policy(
            db,
            TWO_APPS_POLICY.replace("idle_timeout: 15m", "idle_timeout: 2s"),
            actor="test",
            source="",
            now=portal.clock(),
        )
    with portal.signed_in("agent2") as agent2:
        assert launch(agent2).status_code == 200
        seat = _seat(portal, "agent2")
        assert _lease(portal, "agent2").idle_timeout_seconds == 2
        portal.broker.enforce_limits()
        assert _lease(portal, "agent2").state is SeatLeaseState.ASSIGNED  # just launched: not idle yet
        while seat.process.idle_seconds() < 2:
            time.sleep(0.2)
        portal.clock.advance(3)
        assert portal.broker.enforce_limits() >= 1
    lease = _lease(portal, "agent2")
    assert (lease.state, lease.end_reason) == (SeatLeaseState.ENDED, SeatEndReason.IDLE)
    assert audit_trail(portal, "seat.end")[-1].outcome == "idle_timeout"
    assert _wait_until(lambda: not seat.process.alive() and portal.broker.pool.get(seat.seat_id) is None, 5)  # type: ignore[union-attr]
    with session_scope(portal.engine) as db:
        import_policy(db, TWO_APPS_POLICY, actor="test", source="", now=portal.clock())


def test_signing_out_of_the_portal_ends_the_seat(portal: SeatPortal, agent1: httpx.Client, seat_page: Page) -> None:
    seat = _seat(portal, "agent1")
    response = agent1.post("/logout", data={"csrf": csrf_of(agent1.get("/agent"))})
    assert response.status_code == 303
    assert _wait_until(lambda: not seat.process.alive(), 5)
    assert _lease(portal, "agent1").end_reason is SeatEndReason.SESSION_ENDED
    seat_page.wait_for_function("document.getElementById('status').dataset.state === 'ended'", timeout=5_000)
