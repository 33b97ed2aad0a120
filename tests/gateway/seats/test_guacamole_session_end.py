"""A Guacamole RDP seat lives no longer than the portal session it belongs to, and ends with it within a second.

Real components throughout (test_guacamole_from_portal's set-up): Chromium on the seat page, the REAL guacamole-lite
(node server.js) keeping its liveness question open at the gateway's real `/internal/launch/alive`, the REAL guacd
and an xrdp session. Ending the home session must close the page's connection, guacd's socket and guacd's RDP client
within 1 s: the gateway answers the held question the moment the end commits (a push), not at the next poll.
"""

import html as html_module
import re
import time
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser
from sqlmodel import Session, col, select

from gateway.audit.models import AuditEvent
from gateway.clock import utcnow
from gateway.db import session_scope
from gateway.seats.models import LaunchToken, SeatEndReason, SeatLease
from gateway.sessions.models import EndReason, HomeSession, SessionState
from gateway.sessions.service import end_session
from tests.desktop_broker.test_guacamole_launch import NodeServer, guacd, log_dir, refused, tap  # noqa: F401
from tests.gateway.seats.conftest import SeatPortal, launch
from tests.gateway.seats.test_guacamole_from_portal import (  # noqa: F401
    agent_connection,
    node,
    open_app,
    portal,
    rdp_host,
)
from tests.gateway.voice.conftest import wait_for
from tests.support.guacd import GuacdTap, RealGuacd
from tests.support.xrdp import RdpHost

pytestmark = pytest.mark.e2e

PUSHED_WITHIN_SECONDS = 1.0


def _launch_token(client: httpx.Client) -> str:
    page = launch(client, "billing")
    assert page.status_code == 200, page.text
    token = re.search(r'data-token="([^"]+)"', page.text)
    assert token is not None
    return html_module.unescape(token.group(1))


def _end_session(running: SeatPortal, login: str) -> None:
    with session_scope(running.engine) as db:
        session = db.exec(
            select(HomeSession).where(HomeSession.login == login, HomeSession.state == SessionState.ACTIVE)
        ).one()
        end_session(db, session, EndReason.LOGOUT, actor=login, now=utcnow())


def _lease(running: SeatPortal, login: str) -> SeatLease:
    with Session(running.engine) as db:
        return db.exec(select(SeatLease).where(SeatLease.login == login)).one()


@pytest.fixture
def agent(portal: SeatPortal) -> Iterator[httpx.Client]:  # noqa: F811
    with portal.signed_in("agent1") as client:
        yield client


def test_ending_the_session_closes_the_rdp_seat_within_one_second(
    portal: SeatPortal,  # noqa: F811
    node: NodeServer,  # noqa: F811
    guacd: RealGuacd,  # noqa: F811
    tap: GuacdTap,  # noqa: F811
    rdp_host: RdpHost,  # noqa: F811
    browser: Browser,
    agent: httpx.Client,
) -> None:
    before = len(tap.connections)
    page, _ = open_app(portal, browser, agent, rdp_host)
    try:
        connection = agent_connection(tap, before)
        # The question is held open while the session is active: a whole old poll interval passes, nothing closes.
        time.sleep(3.5)
        assert page.evaluate("window.guacamoleState") == 3 and connection.open
        mark = guacd.mark()
        _end_session(portal, "agent1")
        ended = time.monotonic()
        page.wait_for_function("window.guacamoleState === 5", timeout=5_000)  # Guacamole.Client DISCONNECTED
        page_closed = time.monotonic() - ended
        assert tap.wait_for(lambda: not connection.open, timeout=5)
        guacd_closed = time.monotonic() - ended
        guacd.wait_for_log("Internal RDP client disconnected", since=mark, timeout=5)
        rdp_closed = time.monotonic() - ended
        # The page's reconnect is refused (401) and it says why, offering to sign in again instead of retrying.
        page.wait_for_selector("#sign-in-again:not([hidden])", timeout=5_000)
        status = page.inner_text("#status")
        sign_in = page.get_attribute("#sign-in-again", "href")
    finally:
        page.context.close()
    print(
        f"\nsession ended → page disconnected {page_closed:.2f} s, guacd socket closed {guacd_closed:.2f} s, "
        f"guacd's RDP client gone {rdp_closed:.2f} s"
    )
    assert guacd_closed <= PUSHED_WITHIN_SECONDS and page_closed <= PUSHED_WITHIN_SECONDS
    assert rdp_closed <= PUSHED_WITHIN_SECONDS + 0.5
    assert (status, sign_in) == ("Your session has ended.", "/login?ended=logout")
    wait_for(lambda: _lease(portal, "agent1").end_reason is SeatEndReason.SESSION_ENDED)


def test_a_launch_whose_session_ended_before_it_was_used_is_refused_and_never_reaches_guacd(
    portal: SeatPortal,  # noqa: F811
    node: NodeServer,  # noqa: F811
    guacd: RealGuacd,  # noqa: F811
    tap: GuacdTap,  # noqa: F811
) -> None:
    with portal.signed_in("agent2") as agent2:
        token = _launch_token(agent2)
    _end_session(portal, "agent2")
    mark, before = guacd.mark(), len(tap.connections)
    assert refused(node, token)
    time.sleep(0.3)
    assert guacd.new_connections(mark) == 0 and tap.since(before) == []
    with Session(portal.engine) as db:
        last = db.exec(
            select(AuditEvent).where(AuditEvent.action == "seat.connect").order_by(col(AuditEvent.seq).desc())
        ).first()
    assert last is not None and (last.actor, last.outcome) == ("guacamole-lite", "refused")
    assert "has ended" in last.detail


def test_the_alive_route_answers_loopback_only_holds_while_alive_and_says_no_once_the_session_ended(
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
        held = time.monotonic()
        assert client.get("/internal/launch/alive", params={**ask, "wait_ms": 700}).json() == {"alive": True}
        assert time.monotonic() - held >= 0.7
        forwarded = client.get("/internal/launch/alive", params=ask, headers={"X-Forwarded-For": "198.51.100.7"})
        assert forwarded.status_code == 403
        _end_session(portal, "agent2")
        assert client.get("/internal/launch/alive", params={**ask, "wait_ms": 5000}).json() == {"alive": False}
        assert client.get("/internal/launch/alive", params={"launch_id": "no-such-launch"}).json() == {"alive": False}
