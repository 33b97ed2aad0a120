"""A Guacamole app launched from the portal: the agent clicks it, the gateway mints a one-time launch with
policy's compiled RDP parameters, the seat page (guacamole-common-js from the gateway's own origin)
connects to the REAL guacamole-lite (node server.js), which redeems the launch at the gateway's loopback
route before anything reaches the guacd PROTOCOL STAND-IN. Chromium draws the stand-in's frame.
"""

import html as html_module
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser
from sqlmodel import Session, select

import tests.desktop_broker.guacd_standin as guacd_standin

# test_guacamole_launch imports the stand-in as a top-level module (pytest puts its folder on sys.path
# when it collects it); give it the same module object when this file is collected on its own.
sys.modules.setdefault("guacd_standin", guacd_standin)

from desktop_broker.guacamole.token import derive_token_key  # noqa: E402
from gateway.seats.models import LaunchToken, SeatLease, SeatLeaseState  # noqa: E402
from tests.desktop_broker.guacd_standin import GuacdStandIn  # noqa: E402
from tests.desktop_broker.test_guacamole_launch import (  # noqa: E402, F401 - fixtures are used by name
    KEY,
    NodeServer,
    log_dir,
    new_connections,
    refused,
    standin,
)
from tests.gateway.seats.conftest import (  # noqa: E402
    SeatPortal,
    audit_trail,
    browser_context,
    launch,
    seat_portal_on_sqlite,
)
from tests.gateway.voice.conftest import wait_for  # noqa: E402

pytestmark = pytest.mark.e2e

SECRET = "test broker secret, 32 bytes or more!"
"""The secret server.js's key (KEY, GUACLITE_KEY_HEX) is derived from in test_guacamole_launch."""
POLICY = """
version: 1
apps:
  - id: billing
    title: Billing (RemoteApp)
    backend: guacamole
    protocol: rdp
    host: 10.20.0.15
    remote_app: agentapp
roles:
  supervisor: {require_client_certificate: false}
  security_admin: {require_client_certificate: false}
groups:
  SOHO-Agents:
    roles: [agent]
    apps: [billing]
    watermark: {enabled: true, template: "{user} {time}"}
    idle_timeout: 15m
    max_session: 8h
"""
STANDIN_BLUE = [32, 128, 224, 255]
"""The stand-in's first frame: a rectangle filled with this colour (guacd_standin.py)."""


@pytest.fixture(scope="module")
def node(node_modules: Path, standin: GuacdStandIn, log_dir: Path, portal: SeatPortal) -> Iterator[NodeServer]:  # noqa: F811
    """guacamole-lite redeeming at the gateway's real /internal/launch routes; the portal points browsers at it."""
    assert derive_token_key(SECRET.encode()) == KEY
    running = NodeServer(standin.port, f"{portal.base_url}/internal/launch", log_dir)
    # Its port is known only now: the one setting that depends on it is set before any launch.
    portal.broker.settings.guacamole_websocket_url = f"ws://127.0.0.1:{running.port}/"
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeatPortal]:
    with seat_portal_on_sqlite(
        tmp_path_factory, "guacamole-portal", warm=0, guacamole_secret=SECRET, policy=POLICY
    ) as running:
        yield running


def _rows(portal: SeatPortal, model: type, **where: str) -> list:  # type: ignore[type-arg]
    with Session(portal.engine) as db:
        query = select(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return list(db.exec(query).all())


def _lease(portal: SeatPortal, login: str) -> SeatLease:
    (lease,) = _rows(portal, SeatLease, login=login)
    return lease  # type: ignore[no-any-return]


def test_clicking_a_guacamole_app_opens_it_with_policys_parameters_and_a_token_used_once(
    portal: SeatPortal,
    node: NodeServer,
    standin: GuacdStandIn,  # noqa: F811
    browser: Browser,
    agent1: httpx.Client,
) -> None:
    before = len(standin.connections)
    context = browser_context(portal, browser, agent1)
    try:
        page = context.new_page()
        page.goto(portal.base_url + "/agent")
        page.click('li[data-app="billing"] button')
        page.wait_for_function("window.guacamoleState === 3", timeout=10_000)  # Guacamole.Client CONNECTED
        page.wait_for_function(
            "(() => { const c = window.guacClient.getDisplay().getDefaultLayer().getCanvas();"
            " return c.getContext('2d').getImageData(10, 10, 1, 1).data[3] === 255; })()",
            timeout=10_000,
        )
        pixel = page.evaluate(
            "Array.from(window.guacClient.getDisplay().getDefaultLayer().getCanvas()"
            ".getContext('2d').getImageData(10, 10, 1, 1).data)"
        )
        html = page.content()
        script_sources = page.eval_on_selector_all("script[src], script[type=module]", "s => s.map(x => x.text)")
        watermark = page.inner_text("#watermark")
        wait_for(lambda: _lease(portal, "agent1").state is SeatLeaseState.CONNECTED)  # server.js: /connected
        connected = _lease(portal, "agent1")
    finally:
        context.close()
    wait_for(lambda: _lease(portal, "agent1").state is SeatLeaseState.ASSIGNED)  # server.js: /closed

    assert pixel == STANDIN_BLUE
    (received,) = new_connections(standin, before)
    assert received["hostname"] == "10.20.0.15"
    assert received["remote-app"] == "||agentapp"
    assert (received["disable-copy"], received["disable-paste"]) == ("true", "true")
    assert (received["enable-drive"], received["enable-printing"]) == ("false", "false")
    assert received["read-only"] == ""  # interactive launches never carry the supervisors' switch
    assert "agent1" in watermark
    assert any('from "/guacamole-js/guacamole-common.js"' in text for text in script_sources)

    assert (connected.backend, connected.app_id) == ("guacamole", "billing")
    assert connected.connection_id == standin.connections[before].connection_id
    launches = _rows(portal, LaunchToken, backend="guacamole")
    assert [row.seat_id for row in launches] == [connected.seat_id] and launches[0].used_at is not None

    token = re.search(r'data-token="([^"]+)"', html)
    assert token is not None
    replay_from = len(standin.connections)
    assert refused(node, html_module.unescape(token.group(1)))
    assert new_connections(standin, replay_from) == []
    outcomes = [(event.actor, event.outcome) for event in audit_trail(portal, "seat.connect")]
    assert outcomes[-2:] == [("agent1", "success"), ("guacamole-lite", "refused")]


def test_without_a_guacamole_secret_the_launch_is_refused_audited_and_leaves_no_lease(portal: SeatPortal) -> None:
    settings = portal.broker.settings
    secret, settings.guacamole_secret = settings.guacamole_secret, None
    try:
        with portal.signed_in("agent2") as agent2:
            answer = launch(agent2, "billing")
    finally:
        settings.guacamole_secret = secret
    assert answer.status_code == 503 and 'data-reason="seat.guacamole_unavailable"' in answer.text
    assert _rows(portal, SeatLease, login="agent2") == []
    last = audit_trail(portal, "seat.launch")[-1]
    assert (last.actor, last.target, last.outcome) == ("agent2", "billing", "refused")
