"""Policy's idle timeout ends an RDP seat nobody uses, and only that one, on real components throughout.

test_guacamole_from_portal's set-up with a 20 s idle timeout: the portal mints the launch, the REAL guacamole-lite
(node server.js) redeems it and reports the agent's input to the gateway's real `/internal/launch/input`, the REAL
guacd 1.6.0 holds an xrdp session, and the gateway's own `seats.limits` worker decides. The agent is a websocket
client behaving as guacamole-common-js on a page left open (it answers every `sync` and sends `nop` every 5 s), and
while "in use" it also moves the pointer every 2 s. The last test leaves the real seat page open in Chromium instead.
"""

import html as html_module
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Request
from sqlmodel import Session, select
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection

from desktop_broker.recording import wire
from gateway.clock import as_utc
from gateway.seats.models import SeatEndReason, SeatLease, SeatLeaseState
from gateway.seats.settings import RecordingSettings
from gateway.seats.workers import LIMITS_SECONDS
from gateway.sessions.models import HomeSession
from tests.desktop_broker.test_guacamole_launch import (  # noqa: F401 - fixtures are used by name
    NodeServer,
    guacd,
    log_dir,
    open_seat,
    read_until_sync,
    tap,
    text_instruction,
)
from tests.gateway.seats.conftest import SeatPortal, audit_trail, launch, seat_portal_on_sqlite
from tests.gateway.seats.test_guacamole_from_portal import (  # noqa: F401
    SECRET,
    agent_connection,
    lease_of,
    node,
    open_app,
    rdp_host,
    rdp_policy,
)
from tests.support.guacamole_lite import SERVER_DIR
from tests.support.guacd import GuacdTap, RealGuacd
from tests.support.xrdp import RdpHost

pytestmark = pytest.mark.e2e

IDLE_TIMEOUT = 20
"""Seconds: policy's shortest sensible idle timeout here, twice server.js's input report interval."""
POINTER_EVERY = 2.0
SESSION_CLOSED = "523"  # what server.js tells guacamole-common-js when the gateway says the launch is over


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory, rdp_host: RdpHost, log_dir: Path) -> Iterator[SeatPortal]:  # noqa: F811
    password_file = log_dir / "billing.password"
    password_file.write_text(rdp_host.password + "\n")
    password_file.chmod(0o600)
    policy = rdp_policy(rdp_host, log_dir / "recordings").replace("idle_timeout: 15m", f"idle_timeout: {IDLE_TIMEOUT}s")
    assert f"idle_timeout: {IDLE_TIMEOUT}s" in policy
    with seat_portal_on_sqlite(
        tmp_path_factory,
        "guacamole-idle",
        warm=0,
        guacamole_secret=SECRET,
        guacamole_passwords={"billing": password_file},
        policy=policy,
        recording=RecordingSettings(
            in_progress_dir=log_dir / "recordings", sealed_dir=log_dir / "sealed", key_file=log_dir / "recordings.key"
        ),
    ) as running:
        yield running


def _report_interval() -> float:
    found = re.search(r"REPORT_MS = (\d+)", (SERVER_DIR / "lib" / "agent-input.js").read_text())
    assert found, "server.js's input report interval is no longer where this test reads it"
    return int(found[1]) / 1000


def _lease(portal: SeatPortal) -> SeatLease:
    with Session(portal.engine) as db:
        return db.exec(select(SeatLease).where(SeatLease.login == "agent1")).one()


class OpenPage:
    """The agent's websocket, kept open as guacamole-common-js keeps it: every `sync` answered, `nop` every 5 s."""

    def __init__(self, client: ClientConnection) -> None:
        self.client = client
        self.parser = wire.InstructionReader()
        self.errors: list[tuple[str, ...]] = []
        self.last_pointer = 0.0
        self.closed = False
        self._next_nop = time.monotonic() + 5

    def keep(self, seconds: float, pointer: bool) -> None:
        """Talk for `seconds` (moving the pointer every POINTER_EVERY s if `pointer`), or until the gateway closes."""
        deadline, moves = time.monotonic() + seconds, 0
        next_move = time.monotonic() if pointer else float("inf")
        while not self.closed and (now := time.monotonic()) < deadline:
            if now >= self._next_nop:
                self.client.send(text_instruction("nop"))
                self._next_nop += 5
            if now >= next_move:
                moves += 1
                self.client.send(text_instruction("mouse", str(100 + 10 * (moves % 20)), "300", "0"))
                self.last_pointer, next_move = time.monotonic(), next_move + POINTER_EVERY
            try:
                message = self.client.recv(timeout=max(0.05, min(self._next_nop, next_move, deadline) - now))
            except TimeoutError:
                continue
            except ConnectionClosed:
                self.closed = True
                break
            for instruction in self.parser.feed(message.encode() if isinstance(message, str) else message):
                if instruction[0] == "sync":
                    self.client.send(text_instruction("sync", instruction[1]))
                elif instruction[0] == "error":
                    self.errors.append(instruction)


@pytest.fixture
def agent(portal: SeatPortal) -> Iterator[httpx.Client]:
    with portal.signed_in("agent1") as client:
        yield client


@contextmanager
def asking_for_watchers(agent: httpx.Client) -> Iterator[None]:
    """What the seat page does besides its websocket: ask every 2 s who watches, which keeps the home session in use
    (the session's own idle timeout counts portal requests; the seat's counts input)."""
    stop = threading.Event()

    def ask() -> None:
        while not stop.wait(2.0):
            assert agent.get("/agent/seats/watchers").status_code == 200

    asking = threading.Thread(target=ask, daemon=True)
    asking.start()
    try:
        yield
    finally:
        stop.set()
        asking.join()


def test_an_rdp_seat_ends_at_the_idle_timeout_after_the_agents_last_input_and_not_while_in_use(
    portal: SeatPortal,
    node: NodeServer,  # noqa: F811
    guacd: RealGuacd,  # noqa: F811
    tap: GuacdTap,  # noqa: F811
    rdp_host: RdpHost,  # noqa: F811
    agent: httpx.Client,
) -> None:
    assert 2 * _report_interval() <= IDLE_TIMEOUT
    page = launch(agent, "billing")
    assert page.status_code == 200, page.text
    token = re.search(r'data-token="([^"]+)"', page.text)
    assert token is not None
    before = len(tap.connections)
    with asking_for_watchers(agent), open_seat(node, html_module.unescape(token.group(1))) as client:
        read_until_sync(client, timeout=30)
        connected = portal.clock()
        connection = agent_connection(tap, before)
        seat = OpenPage(client)
        # In use for longer than the timeout from the hand-over: the seat stays.
        seat.keep(IDLE_TIMEOUT * 1.5, pointer=True)
        in_use, errors_in_use = _lease(portal), list(seat.errors)
        # Then left open: nothing but `nop` and `sync`, until the gateway closes it (or far too long has passed).
        seat.keep(IDLE_TIMEOUT + LIMITS_SECONDS + 15, pointer=False)
        closed_after = time.monotonic() - seat.last_pointer
    assert (in_use.state, in_use.end_reason, errors_in_use, in_use.last_input_at is not None) == (
        SeatLeaseState.CONNECTED,
        None,
        [],
        True,
    )
    # The supervisors' wall counts idle from last_activity_at: the reported input moved it past the connection.
    assert as_utc(in_use.last_activity_at) - connected >= timedelta(seconds=5)
    print(f"\nseat left open after its last input: closed {closed_after:.1f} s later (idle timeout {IDLE_TIMEOUT} s)")
    assert seat.closed, "the seat left open was never closed"
    assert [error[2] for error in seat.errors] == [SESSION_CLOSED]
    assert IDLE_TIMEOUT - 0.5 <= closed_after <= IDLE_TIMEOUT + LIMITS_SECONDS + 5
    assert tap.wait_for(lambda: not connection.open, timeout=5)  # guacd's socket too
    ended = _lease(portal)
    assert (ended.state, ended.end_reason) == (SeatLeaseState.ENDED, SeatEndReason.IDLE)
    (audited,) = [event for event in audit_trail(portal, "seat.end") if ended.id in event.detail]
    assert (audited.target, audited.outcome) == ("agent1", "idle_timeout")
    # The seat page's own reconnect does not undo the policy's end; the workspace's click does.
    with Session(portal.engine) as db:
        session = db.exec(select(HomeSession).where(HomeSession.id == ended.session_id)).one()
    reconnect = agent.post("/agent/apps/billing/reconnect", headers={"x-csrf-token": session.csrf_token})
    assert reconnect.status_code == 409, reconnect.text
    (refused,) = audit_trail(portal, "seat.reconnect")
    assert refused.outcome == "refused" and "idle_timeout" in refused.detail


def test_the_seat_page_says_the_idle_timeout_closed_the_seat_and_does_not_reopen_it(
    portal: SeatPortal,
    node: NodeServer,  # noqa: F811
    rdp_host: RdpHost,  # noqa: F811
    browser: Browser,
) -> None:
    """The page left open in Chromium: when policy's idle timeout ends the seat, the page's reconnect is refused
    (409) and the page shows that refusal's words, once, instead of a bare "closed" or a loop of retries."""
    with portal.signed_in("agent2") as agent2:
        page, _ = open_app(portal, browser, agent2, rdp_host)
        asked: list[str] = []

        def count(request: Request) -> None:
            if request.url.endswith("/agent/apps/billing/reconnect"):
                asked.append(request.method)

        page.on("request", count)
        try:
            page.wait_for_function(
                "document.getElementById('status').dataset.state === 'ended'",
                timeout=(IDLE_TIMEOUT + LIMITS_SECONDS + 30) * 1000,
            )
            said = page.text_content("#status") or ""
            time.sleep(3)  # a page that retried would have asked again by now (its first retries are within 1.5 s)
            still = page.text_content("#status")
        finally:
            page.context.close()
    ended = lease_of(portal, "agent2")
    assert (ended.state, ended.end_reason) == (SeatLeaseState.ENDED, SeatEndReason.IDLE)
    assert "without activity" in said and "workspace" in said, said
    assert still == said and asked == ["POST"]
    refused = [event for event in audit_trail(portal, "seat.reconnect") if event.actor == "agent2"]
    assert [event.outcome for event in refused] == ["refused"]
