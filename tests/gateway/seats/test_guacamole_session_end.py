"""A Guacamole seat lives no longer than the portal session it belongs to.

The REAL guacamole-lite (node server.js) redeems at the gateway's real `/internal/launch/*` routes and
asks `/internal/launch/alive` every GUACLITE_ALIVE_POLL_MS (default 3 s) while a connection lasts; the
guacd PROTOCOL STAND-IN takes guacd's place. Ending the session must close the browser's websocket and
the stand-in's socket within one poll interval (plus a margin), and a launch whose session has ended
must not be redeemed.
"""

import html as html_module
import re
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from sqlmodel import Session, col, select
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection

import tests.desktop_broker.guacd_standin as guacd_standin

sys.modules.setdefault("guacd_standin", guacd_standin)

from gateway.audit.models import AuditEvent  # noqa: E402
from gateway.clock import utcnow  # noqa: E402
from gateway.db import session_scope  # noqa: E402
from gateway.seats.models import LaunchToken, SeatEndReason, SeatLease, SeatLeaseState  # noqa: E402
from gateway.sessions.models import EndReason, HomeSession, SessionState  # noqa: E402
from gateway.sessions.service import end_session  # noqa: E402
from tests.desktop_broker.guacd_standin import GuacdStandIn  # noqa: E402
from tests.desktop_broker.test_guacamole_launch import (  # noqa: E402, F401 - fixtures are used by name
    NodeServer,
    log_dir,
    new_connections,
    open_seat,
    read_until_sync,
    refused,
    standin,
)
from tests.gateway.seats.conftest import SeatPortal, launch  # noqa: E402
from tests.gateway.seats.test_guacamole_from_portal import node, portal  # noqa: E402, F401
from tests.gateway.voice.conftest import wait_for  # noqa: E402

pytestmark = pytest.mark.e2e

POLL_SECONDS = 3.0
"""server.js's default GUACLITE_ALIVE_POLL_MS (the NodeServer fixture leaves it unset)."""
MARGIN_SECONDS = 1.5


def _launch_token(client: httpx.Client) -> str:
    page = launch(client, "billing")
    assert page.status_code == 200, page.text
    token = re.search(r'data-token="([^"]+)"', page.text)
    assert token is not None
    return html_module.unescape(token.group(1))


def _active_session(running: SeatPortal, login: str) -> HomeSession:
    with Session(running.engine) as db:
        return db.exec(
            select(HomeSession).where(HomeSession.login == login, HomeSession.state == SessionState.ACTIVE)
        ).one()


def _end_session(running: SeatPortal, login: str) -> None:
    with session_scope(running.engine) as db:
        session = db.get(HomeSession, _active_session(running, login).id)
        assert session is not None
        end_session(db, session, EndReason.LOGOUT, actor=login, now=utcnow())


def _lease(running: SeatPortal, login: str) -> SeatLease:
    with Session(running.engine) as db:
        return db.exec(select(SeatLease).where(SeatLease.login == login)).one()


def _closed_after(client: ClientConnection, deadline: float) -> float | None:
    """Read until the server closes the websocket; the monotonic time it closed, or None by `deadline`."""
    while time.monotonic() < deadline:
        try:
            client.recv(timeout=max(0.01, deadline - time.monotonic()))
        except ConnectionClosed:
            return time.monotonic()
        except TimeoutError:
            return None
    return None


@pytest.fixture
def agent(portal: SeatPortal) -> Iterator[httpx.Client]:  # noqa: F811
    with portal.signed_in("agent1") as client:
        yield client


def test_ending_the_session_closes_the_agents_websocket_and_guacds_socket_within_one_poll(
    portal: SeatPortal,  # noqa: F811
    node: NodeServer,  # noqa: F811
    standin: GuacdStandIn,  # noqa: F811
    agent: httpx.Client,
) -> None:
    before = len(standin.connections)
    with open_seat(node, _launch_token(agent)) as client:
        assert read_until_sync(client)[-1][0] == "sync"
        assert len(new_connections(standin, before)) == 1
        guacd_sockets = set(standin._server.live_sockets)
        assert len(guacd_sockets) == 1
        wait_for(lambda: _lease(portal, "agent1").state is SeatLeaseState.CONNECTED)
        # While the session is active the broker says "alive": a whole poll passes and nothing closes.
        assert _closed_after(client, time.monotonic() + POLL_SECONDS + 0.5) is None

        _end_session(portal, "agent1")
        ended = time.monotonic()
        websocket_closed = _closed_after(client, ended + POLL_SECONDS + MARGIN_SECONDS)
        assert websocket_closed is not None, "the browser's websocket outlived the session"
        assert standin.wait_for(lambda: not guacd_sockets & standin._server.live_sockets, timeout=MARGIN_SECONDS)
        guacd_closed = time.monotonic()
    print(
        f"\nsession ended → websocket closed in {websocket_closed - ended:.2f} s, "
        f"guacd socket closed in {guacd_closed - ended:.2f} s (poll {POLL_SECONDS:.0f} s)"
    )
    assert guacd_closed - ended <= POLL_SECONDS + MARGIN_SECONDS
    wait_for(lambda: _lease(portal, "agent1").end_reason is SeatEndReason.SESSION_ENDED)


def test_a_launch_whose_session_ended_before_it_was_used_is_refused_and_never_reaches_guacd(
    portal: SeatPortal,  # noqa: F811
    node: NodeServer,  # noqa: F811
    standin: GuacdStandIn,  # noqa: F811
) -> None:
    with portal.signed_in("agent2") as agent2:
        token = _launch_token(agent2)
    _end_session(portal, "agent2")
    before = len(standin.connections)
    assert refused(node, token)
    assert new_connections(standin, before) == []
    with Session(portal.engine) as db:
        last = db.exec(
            select(AuditEvent).where(AuditEvent.action == "seat.connect").order_by(col(AuditEvent.seq).desc())
        ).first()
    assert last is not None and (last.actor, last.outcome) == ("guacamole-lite", "refused")
    assert "has ended" in last.detail


def test_the_alive_route_answers_loopback_only_and_says_no_once_the_session_ended(
    portal: SeatPortal,  # noqa: F811
    node: NodeServer,  # noqa: F811
) -> None:
    with portal.signed_in("agent2") as agent2:
        _launch_token(agent2)
    with Session(portal.engine) as db:
        launch_id = db.exec(
            select(LaunchToken.id).where(LaunchToken.login == "agent2").order_by(col(LaunchToken.created_at).desc())
        ).first()
    with portal.client() as client:
        ask = {"launch_id": launch_id}
        assert client.get("/internal/launch/alive", params=ask).json() == {"alive": True}
        forwarded = client.get("/internal/launch/alive", params=ask, headers={"X-Forwarded-For": "198.51.100.7"})
        assert forwarded.status_code == 403
        _end_session(portal, "agent2")
        assert client.get("/internal/launch/alive", params=ask).json() == {"alive": False}
        assert client.get("/internal/launch/alive", params={"launch_id": "no-such-launch"}).json() == {"alive": False}
