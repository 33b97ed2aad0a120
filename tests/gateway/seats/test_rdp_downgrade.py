"""An RDP host that drops TLS after its certificate was learned: Debian's real xrdp with `security_layer=rdp`.

Standard RDP security has no TLS handshake, so FreeRDP compares no `cert-fingerprints` and no CA chain: with
guacd's default `security=any` the pin would be bypassed by a host (or a man in the middle) that offers only it.
The gateway refuses such a host, audited, and the parameters policy compiles (`security=tls`) make the REAL guacd
1.6.0 refuse it too. The portal, guacamole-lite and guacd come from test_guacamole_from_portal's fixtures; only the
RDP host differs.
"""

import contextlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import Session
from websockets.exceptions import ConnectionClosed

from desktop_broker.recording.wire import InstructionReader
from gateway.seats.models import RdpHostCertificate
from policy import compile_guacamole, evaluate, load_policy
from tests.desktop_broker.test_guacamole_launch import (  # noqa: F401 - fixtures are used by name
    LaunchEndpoint,
    NodeServer,
    guacd,
    log_dir,
    open_seat,
    tap,
)
from tests.gateway.seats.conftest import SeatPortal, audit_trail, launch
from tests.gateway.seats.test_guacamole_from_portal import CONSOLE, node, portal, rdp_policy  # noqa: F401
from tests.support.guacd import GuacdTap, RealGuacd
from tests.support.xrdp import RdpHost, xrdp_host

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def rdp_host() -> Iterator[RdpHost]:
    """Overrides the portal's host: the same xrdp, offering only standard RDP security (no TLS, no certificate)."""
    with xrdp_host(CONSOLE, security_layer="rdp") as running:
        yield running


def test_a_learned_host_now_offering_no_tls_is_refused_and_audited_before_guacd(
    portal: SeatPortal,  # noqa: F811
    node: NodeServer,  # noqa: F811
    guacd: RealGuacd,  # noqa: F811
    tap: GuacdTap,  # noqa: F811
    rdp_host: RdpHost,
) -> None:
    """The fingerprint learned while the host offered TLS is not handed to guacd when it now offers none."""
    with Session(portal.engine) as db:
        learned_at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
        db.add(
            RdpHostCertificate(
                host="127.0.0.1",
                port=rdp_host.port,
                fingerprint=rdp_host.fingerprint,
                first_seen_at=learned_at,
                first_seen_for="agent2",
            )
        )
        db.commit()
    mark, before = guacd.mark(), len(tap.connections)
    with portal.signed_in("agent1") as agent1:
        page = launch(agent1, "billing")
    assert page.status_code == 503 and "could not be read" in page.text, page.text
    assert 'data-token="' not in page.text
    time.sleep(0.3)
    assert guacd.new_connections(mark) == 0 and tap.since(before) == []
    last = audit_trail(portal, "seat.rdp_certificate")[-1]
    assert (last.actor, last.outcome) == ("agent1", "unreadable")
    assert rdp_host.fingerprint in last.detail and "no TLS-based security" in last.detail


def test_guacd_given_the_compiled_parameters_does_not_connect_without_tls(
    node_modules: Path,
    guacd: RealGuacd,  # noqa: F811
    tap: GuacdTap,  # noqa: F811
    rdp_host: RdpHost,
    log_dir: Path,  # noqa: F811
) -> None:
    """Policy's own parameters for the learned pin, straight to guacd: no fallback to standard RDP security."""
    document = load_policy(rdp_policy(rdp_host, log_dir / "recordings"))
    effective = evaluate(document, ["SOHO-Agents"], datetime.now(UTC))
    parameters = compile_guacamole(effective, "billing", user="agent1", learned_fingerprint=rdp_host.fingerprint)
    parameters["password"] = rdp_host.password
    endpoint = LaunchEndpoint()
    endpoint.thread.start()
    direct = NodeServer(tap.port, endpoint.url, log_dir)
    try:
        token = endpoint.gate.issue_seat_launch(user="agent1", seat="s", protocol="rdp", parameters=parameters).token
        mark, before = guacd.mark(), len(tap.connections)
        errors: list[tuple[str, ...]] = []
        with open_seat(direct, token) as client, contextlib.suppress(ConnectionClosed, TimeoutError):
            deadline = time.monotonic() + 20
            while not errors and time.monotonic() < deadline:
                message = client.recv(timeout=deadline - time.monotonic())
                errors = [i for i in InstructionReader().feed(message.encode()) if i[0] == "error"]
    finally:
        direct.stop()
        endpoint.server.shutdown()
        endpoint.server.server_close()
    log = guacd.log(mark)
    # FreeRDP stops at the X.224 negotiation (xrdp offers no TLS, guacd asks for nothing else). With guacd's
    # default "any" it went on over standard RDP security and signed in, unchecked, until xrdp logged it off.
    assert errors and errors[0][1:] == ("Security negotiation failed (wrong security type?)", "769"), log[-3000:]
    assert "ERRCONNECT_SECURITY_NEGO_CONNECT_FAILED" in log and "ERRINFO_LOGOFF_BY_USER" not in log
    (connection,) = tap.since(before)
    assert connection.parameters["security"] == "tls"
    assert connection.parameters["cert-fingerprints"] == rdp_host.fingerprint
