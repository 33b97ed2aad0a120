"""The broker is the gate of a watch: view tokens are one-time, personal, view-only by construction, and policy-bound.

A raw RFB client over the gateway's websocket stands in for a tampered browser: it sends keyboard and pointer
events that noVNC's ``viewOnly`` would never send, so only x11vnc's view-only password can stop them.
"""

import re
import socket as socket_module
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import unquote

import httpx
import pytest
from sqlmodel import Session, col, select
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from desktop_broker.pool import PooledSeat
from desktop_broker.x11.rfb_probe import vnc_auth_response
from gateway.audit.models import AuditEvent
from gateway.db import session_scope
from gateway.directory import BuiltinDirectory
from gateway.policies.service import import_policy
from gateway.sessions.deps import SESSION_COOKIE
from gateway.sessions.models import HomeSession
from gateway.supervision import viewing
from gateway.supervision.routes.view import WATCH_CHECK_SECONDS
from tests.desktop_broker.x11_fixtures import pointer_location, wait_for_window, x_run
from tests.gateway.seats.conftest import (
    TWO_APPS_POLICY,
    SeatPortal,
    launch,
    launch_token,
    seat_of,
    seat_portal_on_sqlite,
)
from tests.gateway.sessions.conftest import csrf_of, sign_in
from tests.support.portal import PROXY_SECRET

pytestmark = pytest.mark.e2e
VNC_AUTHENTICATION = 2
NO_VIEWING = TWO_APPS_POLICY.replace(
    "    max_session: 8h\n", "    max_session: 8h\n    supervision: {allow_viewing: false}\n"
)
AGENTS_TEAM_MAPPED_AWAY = TWO_APPS_POLICY + "team_scope:\n  teams:\n    Team-South: [SOHO-Supervisors]\n"
"""sup1's group now supervises another team only: agent1 (in no team) is out of their scope."""


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeatPortal]:
    with seat_portal_on_sqlite(tmp_path_factory, "view-token-portal", warm=1, cap=4, policy=TWO_APPS_POLICY) as running:
        assert isinstance(running.directory, BuiltinDirectory)
        running.directory.add_user("sup2", "sup-two-pw", groups=["SOHO-Supervisors"], display_name="Sup2")
        yield running


@pytest.fixture(scope="module")
def agent1(portal: SeatPortal) -> Iterator[httpx.Client]:
    """agent1 signed in and launched the Customer Console (the seat is theirs; no browser needed)."""
    with portal.signed_in("agent1") as client:
        assert launch(client).status_code == 200
        wait_for_window(seat_of(portal, "agent1").process, "^Customer Console")
        yield client


@pytest.fixture(scope="module")
def sup1(portal: SeatPortal, agent1: httpx.Client) -> Iterator[httpx.Client]:
    with portal.signed_in("sup1") as client:
        yield client


def _agent_session_id(portal: SeatPortal) -> str:
    with Session(portal.engine) as db:
        return db.exec(select(HomeSession.id).where(HomeSession.login == "agent1", HomeSession.state == "active")).one()


def _watch(supervisor: httpx.Client, portal: SeatPortal) -> httpx.Response:
    csrf = csrf_of(supervisor.get("/supervision/wall"))
    return supervisor.post(f"/supervision/watch/{_agent_session_id(portal)}", data={"csrf": csrf})


def _view_token(supervisor: httpx.Client, portal: SeatPortal) -> str:
    page = _watch(supervisor, portal)
    assert page.status_code == 200, page.text
    return unquote(re.search(r'src="/seats/view\?token=([^"]+)"', page.text).group(1))  # type: ignore[union-attr]


@dataclass
class RfbClient:
    """An RFB client past ServerInit, over any transport: how to send bytes and read exactly n of them."""

    send: Callable[[bytes], None]
    read: Callable[[int], bytes]

    def poke(self, x: int = 640, y: int = 400) -> None:
        """Move the pointer to (x, y), click, type "7"; then wait until x11vnc answers a framebuffer request
        sent after them. x11vnc handles one client's messages in order, so by that answer it has applied the input
        or dropped it: the test then looks at the pointer knowing the input was handled, not after a sleep."""
        self.send(struct.pack(">BBHH", 5, 0, x, y) + struct.pack(">BBHH", 5, 1, x, y))
        self.send(struct.pack(">BBHH", 5, 0, x, y))
        self.send(struct.pack(">BBxxI", 4, 1, ord("7")) + struct.pack(">BBxxI", 4, 0, ord("7")))
        self.send(struct.pack(">BBHHHH", 3, 0, 0, 0, 1, 1))  # FramebufferUpdateRequest, one pixel
        while (message_type := self.read(1)[0]) != 0:
            assert message_type == 2, f"unexpected RFB message {message_type}"  # a Bell has no payload


def _after_server_init(client: RfbClient) -> RfbClient:
    client.send(bytes([1]))  # ClientInit: shared
    assert struct.unpack(">HH", client.read(4)) == (1280, 800)
    client.read(16)  # pixel format
    client.read(struct.unpack(">I", client.read(4))[0])  # desktop name
    return client


@contextmanager
def _rfb(
    portal: SeatPortal, path: str, token: str, cookie: str, extra: str = "", headers: dict[str, str] | None = None
) -> Iterator[RfbClient]:
    """An RFB client through the gateway's websocket, past the handshake (the gateway offers "None"); ``headers``
    are sent besides the cookie (a reverse proxy's)."""
    url = portal.base_url.replace("http", "ws") + f"{path}?token={token}{extra}"
    sent = {"Cookie": f"{SESSION_COOKIE}={cookie}", **(headers or {})}
    with connect(url, additional_headers=sent, open_timeout=5) as socket:
        buffer = bytearray()

        def read(size: int) -> bytes:
            while len(buffer) < size:
                buffer.extend(socket.recv(timeout=5))  # type: ignore[arg-type]
            data = bytes(buffer[:size])
            del buffer[:size]
            return data

        assert read(12) == b"RFB 003.008\n"
        socket.send(b"RFB 003.008\n")
        assert read(2) == bytes([1, 1])
        socket.send(bytes([1]))
        assert read(4) == b"\0\0\0\0"
        yield _after_server_init(RfbClient(socket.send, read))


@contextmanager
def _x11vnc(seat: PooledSeat, password: str) -> Iterator[RfbClient]:
    """An RFB client straight to the seat's x11vnc, authenticating with ``password`` (VNC authentication)."""
    address = seat.process.rfb_address
    with socket_module.create_connection((address.host, address.port), timeout=5) as sock:

        def read(size: int) -> bytes:
            data = b""
            while len(data) < size:
                chunk = sock.recv(size - len(data))
                assert chunk, "x11vnc closed the connection"
                data += chunk
            return data

        assert read(12).startswith(b"RFB 003.")
        sock.sendall(b"RFB 003.008\n")
        assert VNC_AUTHENTICATION in read(read(1)[0])
        sock.sendall(bytes([VNC_AUTHENTICATION]))
        sock.sendall(vnc_auth_response(password, read(16)))
        assert read(4) == b"\0\0\0\0", "x11vnc refused the password"
        yield _after_server_init(RfbClient(sock.sendall, read))


def _moved(seat: PooledSeat, before: str) -> bool:
    """Whether the pointer leaves ``before`` within a few seconds (the positive controls wait for it)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if pointer_location(seat.process) != before:
            return True
        time.sleep(0.05)
    return False


def _refused(portal: SeatPortal, path: str, token: str, cookie: str) -> bool:
    try:
        with _rfb(portal, path, token, cookie):
            pass
    except InvalidStatus:
        return True
    return False


def _connect_refusals(portal: SeatPortal) -> list[str]:
    with Session(portal.engine) as db:
        rows = db.exec(select(AuditEvent).where(AuditEvent.action == "seat.connect").order_by(col(AuditEvent.seq)))
        return [str(e.detail) for e in rows if e.outcome == "refused"]


def test_a_watcher_input_never_reaches_the_seat_even_from_a_tampered_client(
    portal: SeatPortal, agent1: httpx.Client, sup1: httpx.Client
) -> None:
    seat = seat_of(portal, "agent1")
    x_run(seat.process, ["xdotool", "mousemove", "100", "600"])
    before = pointer_location(seat.process)
    # Parameters a watcher might try; the websocket has none that select a password or a mode.
    extra = "&mode=interactive&access=full_access&view_only=0"
    with _rfb(portal, "/seats/view/ws", _view_token(sup1, portal), sup1.cookies[SESSION_COOKIE], extra) as watcher:
        watcher.poke()
    assert pointer_location(seat.process) == before
    agent_token = launch_token(agent1)
    with _rfb(portal, "/seats/ws", agent_token, agent1.cookies[SESSION_COOKIE]) as agent:
        agent.poke()
    assert _moved(seat, before), "the same events from the agent must arrive (control)"


def test_the_password_a_view_grant_holds_makes_x11vnc_itself_drop_input(
    portal: SeatPortal, agent1: httpx.Client
) -> None:
    """Asked directly, without the gateway in between: x11vnc ignores a client that signed in with the grant's
    password, and obeys one with the seat's other password (the control)."""
    seat = seat_of(portal, "agent1")
    x_run(seat.process, ["xdotool", "mousemove", "100", "600"])
    before = pointer_location(seat.process)
    # x11vnc skips a motion to where its last injected one went (the earlier test's 640,400): aim elsewhere.
    with _x11vnc(seat, viewing.view_password(seat)) as watcher:
        watcher.poke(320, 200)
    assert pointer_location(seat.process) == before
    with _x11vnc(seat, seat.passwords.full_access) as agent:
        agent.poke(320, 200)
    assert _moved(seat, before)


def test_a_view_token_works_once_and_only_for_its_supervisor_on_the_view_path(
    portal: SeatPortal, agent1: httpx.Client, sup1: httpx.Client
) -> None:
    cookie = sup1.cookies[SESSION_COOKIE]
    token = _view_token(sup1, portal)
    assert not _refused(portal, "/seats/view/ws", token, cookie)
    assert _refused(portal, "/seats/view/ws", token, cookie)  # replayed
    stolen = _view_token(sup1, portal)
    assert _refused(portal, "/seats/view/ws", stolen, agent1.cookies[SESSION_COOKIE])  # the agent holds it
    assert _refused(portal, "/seats/view/ws", stolen, cookie)  # and the thief's attempt burnt it
    with portal.client() as other:
        assert sign_in(other, "sup2", password="sup-two-pw").status_code == 303
        assert _refused(portal, "/seats/view/ws", _view_token(sup1, portal), other.cookies[SESSION_COOKIE])
    assert _refused(portal, "/seats/ws", _view_token(sup1, portal), cookie)  # a watch token on the agent's path
    agent_token = launch_token(agent1)
    assert _refused(portal, "/seats/view/ws", agent_token, agent1.cookies[SESSION_COOKIE])
    refusals = _connect_refusals(portal)[-6:]
    assert ["already used" in r for r in refusals] == [True, False, True, False, False, False]
    assert "another person" in refusals[1] and "another person" in refusals[3]
    assert "for the view path" in refusals[4] and "for the interactive path" in refusals[5]


def test_a_supervisor_is_refused_when_the_agents_policy_forbids_viewing(
    portal: SeatPortal, agent1: httpx.Client, sup1: httpx.Client
) -> None:
    minted_before = _view_token(sup1, portal)
    with session_scope(portal.engine) as db:
        import_policy(db, NO_VIEWING, actor="test", source="", now=portal.clock())
    try:
        assert _watch(sup1, portal).status_code == 403
        assert _refused(portal, "/seats/view/ws", minted_before, sup1.cookies[SESSION_COOKIE])
    finally:
        with session_scope(portal.engine) as db:
            import_policy(db, TWO_APPS_POLICY, actor="test", source="", now=portal.clock())
    with Session(portal.engine) as db:
        last = db.exec(
            select(AuditEvent)
            .where(AuditEvent.action == "supervision.watch.start")
            .order_by(col(AuditEvent.seq).desc())
        ).first()
    assert last is not None and (last.actor, last.target, last.outcome) == ("sup1", "agent1", "refused_by_policy")
    assert "policy does not allow" in _connect_refusals(portal)[-1]


def _closed_within(watcher: RfbClient, seconds: float) -> bool:
    """The gateway closes the watcher's websocket within ``seconds`` (x11vnc sends nothing unasked meanwhile)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            watcher.read(1)
        except ConnectionClosed:
            return True
        except TimeoutError:
            continue
    return False


def _watch_ends(portal: SeatPortal) -> list[AuditEvent]:
    with Session(portal.engine) as db:
        query = select(AuditEvent).where(AuditEvent.action == "supervision.watch.end")
        return list(db.exec(query.order_by(col(AuditEvent.seq))).all())


def test_a_running_watch_ends_audited_when_the_agents_team_is_mapped_away_from_the_supervisor(
    portal: SeatPortal, agent1: httpx.Client, sup1: httpx.Client
) -> None:
    ends_before = len(_watch_ends(portal))
    with _rfb(portal, "/seats/view/ws", _view_token(sup1, portal), sup1.cookies[SESSION_COOKIE]) as watcher:
        with session_scope(portal.engine) as db:
            import_policy(db, AGENTS_TEAM_MAPPED_AWAY, actor="test", source="", now=portal.clock())
        try:
            assert _closed_within(watcher, 3 * WATCH_CHECK_SECONDS + 5)
            ends = _watch_ends(portal)  # written by the gateway before it closed, not by this client leaving
        finally:
            with session_scope(portal.engine) as db:
                import_policy(db, TWO_APPS_POLICY, actor="test", source="", now=portal.clock())
    assert [(e.actor, e.target, e.outcome) for e in ends[ends_before:]] == [("sup1", "agent1", "ended")]


def test_seat_and_watch_connections_through_the_proxy_are_audited_with_the_browsers_address(
    portal: SeatPortal, agent1: httpx.Client, sup1: httpx.Client
) -> None:
    """The proxy (here the test client, from 127.0.0.1) forwards the browser's address with its secret."""
    forwarded = {"X-Forwarded-For": "198.51.100.9", "X-Sohogw-Proxy-Secret": PROXY_SECRET}
    with _rfb(portal, "/seats/ws", launch_token(agent1), agent1.cookies[SESSION_COOKIE], headers=forwarded):
        pass
    token = _view_token(sup1, portal)
    ends_before = len(_watch_ends(portal))
    with _rfb(portal, "/seats/view/ws", token, sup1.cookies[SESSION_COOKIE], headers=forwarded):
        pass
    deadline = time.monotonic() + 10  # the gateway ends the watch once it has seen the socket close
    while len(_watch_ends(portal)) == ends_before and time.monotonic() < deadline:
        time.sleep(0.1)
    with Session(portal.engine) as db:
        rows = db.exec(select(AuditEvent).where(AuditEvent.action == "seat.connect").order_by(col(AuditEvent.seq)))
        connects = [(e.actor, e.source) for e in rows if e.outcome == "success"]
    assert connects[-2:] == [("agent1", "198.51.100.9"), ("sup1", "198.51.100.9")]
    assert [e.source for e in _watch_ends(portal)[ends_before:]] == ["198.51.100.9"]  # its socket closed
