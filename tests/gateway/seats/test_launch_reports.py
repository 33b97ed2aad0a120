"""The `connected` and `closed` reports server.js makes on loopback need the launch's token hash, and a launch
reports its guacd connection once: a local account that learned a launch id cannot point a supervisor's join at
another connection or end a watch. test_guacamole_from_portal.py shows the real server.js making both reports."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from desktop_broker.guacamole.gate import LaunchGate
from desktop_broker.guacamole.token import derive_token_key, token_digest
from gateway.db import session_scope
from gateway.seats.launch_store import DbLaunchStore
from gateway.seats.models import LaunchToken
from tests.gateway.seats.conftest import TWO_APPS_POLICY, SeatPortal, audit_trail, seat_portal

SECRET = "guacamole-broker-secret-for-tests"
RDP = {"hostname": "10.20.0.10", "disable-copy": "true", "disable-paste": "true", "enable-drive": "false"}
RDP |= {"enable-printing": "false", "security": "tls"}


@pytest.fixture
def portal(tmp_path: Path, db_url: str, engine: Engine) -> Iterator[SeatPortal]:
    with seat_portal(tmp_path, db_url, engine, warm=0, guacamole_secret=SECRET, policy=TWO_APPS_POLICY) as running:
        yield running


def redeemed_launch(portal: SeatPortal) -> tuple[str, str]:
    """A launch id and its token's hash, the launch spent by a redemption as server.js makes it."""
    with session_scope(portal.engine) as db:
        gate = LaunchGate(derive_token_key(SECRET.encode()), DbLaunchStore(db, portal.clock), portal.clock)
        issued = gate.issue_seat_launch(user="agent1", seat="billing-1", protocol="rdp", parameters=RDP)
    proof = token_digest(issued.token)
    with portal.client() as client:
        client.post("/internal/launch/redeem", json={"launch_id": issued.launch_id, "token_sha256": proof})
    return issued.launch_id, proof


def test_reports_without_the_launchs_token_hash_are_refused_and_audited(portal: SeatPortal) -> None:
    launch_id, proof = redeemed_launch(portal)
    with portal.client() as client:
        for event, body in (("connected", {"connection_id": "$aaaa"}), ("closed", {})):
            guessed = client.post(
                f"/internal/launch/{event}", json={"launch_id": launch_id, "token_sha256": "0" * 64, **body}
            )
            assert guessed.status_code == 403, guessed.text
        assert client.post("/internal/launch/closed", json={"launch_id": launch_id}).status_code == 422
        assert (
            client.post("/internal/launch/closed", json={"launch_id": launch_id, "token_sha256": proof}).status_code
            == 200
        )
    refused = [(e.action, e.actor, e.target, e.outcome) for e in audit_trail(portal, "seat.connected")]
    refused += [(e.action, e.actor, e.target, e.outcome) for e in audit_trail(portal, "seat.closed")]
    assert refused == [
        ("seat.connected", "guacamole-lite", launch_id, "refused"),
        ("seat.closed", "guacamole-lite", launch_id, "refused"),
    ]
    with Session(portal.engine) as db:
        assert db.get(LaunchToken, launch_id).connection_id is None  # type: ignore[union-attr]


def test_a_launch_reports_its_guacd_connection_once(portal: SeatPortal) -> None:
    launch_id, proof = redeemed_launch(portal)
    report = {"launch_id": launch_id, "token_sha256": proof}
    with portal.client() as client:
        assert client.post("/internal/launch/connected", json={**report, "connection_id": "$first"}).status_code == 200
        moved = client.post("/internal/launch/connected", json={**report, "connection_id": "$other"})
    assert moved.status_code == 403 and "already reported" in moved.text
    with Session(portal.engine) as db:
        assert db.get(LaunchToken, launch_id).connection_id == "$first"  # type: ignore[union-attr]
    (event,) = audit_trail(portal, "seat.connected")
    assert (event.target, event.outcome) == (launch_id, "refused") and "already reported" in event.detail
