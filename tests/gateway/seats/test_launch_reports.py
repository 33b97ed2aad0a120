"""The `connected`, `closed` and `input` reports server.js makes on loopback need the launch's token hash, and a
launch reports its guacd connection once: a local account that learned a launch id cannot point a supervisor's join
at another connection, end a watch or keep an idle seat open. An input report moves the lease's last input forward
only. test_guacamole_from_portal.py shows the real server.js making the first two, test_guacamole_idle.py the third."""

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from desktop_broker.guacamole.gate import LaunchGate
from desktop_broker.guacamole.token import derive_token_key, token_digest
from gateway.clock import as_utc
from gateway.db import session_scope
from gateway.seats.launch_store import DbLaunchStore, bind_launch
from gateway.seats.models import LaunchToken, SeatLease, SeatLeaseState
from gateway.sessions.models import HomeSession, SessionState
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
        for event, body in (("connected", {"connection_id": "$aaaa"}), ("closed", {}), ("input", {"idle_ms": 0})):
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
    refused += [(e.action, e.actor, e.target, e.outcome) for e in audit_trail(portal, "seat.input")]
    assert refused == [
        ("seat.connected", "guacamole-lite", launch_id, "refused"),
        ("seat.closed", "guacamole-lite", launch_id, "refused"),
        ("seat.input", "guacamole-lite", launch_id, "refused"),
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


def leased_launch(portal: SeatPortal) -> tuple[str, str, str]:
    """(launch id, token hash, lease id): agent1's Guacamole lease handed over now, and its launch redeemed."""
    with portal.signed_in("agent1"), session_scope(portal.engine) as db:
        session = db.exec(
            select(HomeSession).where(HomeSession.login == "agent1", HomeSession.state == SessionState.ACTIVE)
        ).one()
        now = portal.clock()
        lease = SeatLease(
            id="guacidle",
            session_id=session.id,
            person_id=session.person_id,
            login="agent1",
            app_id="billing",
            backend="guacamole",
            node=portal.broker.node,
            seat_id="guac-guacidle",
            state=SeatLeaseState.CONNECTED,
            idle_timeout_seconds=900,
            max_session_seconds=28800,
            started_at=now,
            last_activity_at=now,
        )
        db.add(lease)
        db.flush()
        gate = LaunchGate(derive_token_key(SECRET.encode()), DbLaunchStore(db, portal.clock), portal.clock)
        issued = gate.issue_seat_launch(user="agent1", seat=lease.seat_id, protocol="rdp", parameters=RDP)
        bind_launch(db, issued.launch_id, lease)
    proof = token_digest(issued.token)
    with portal.client() as client:
        assert client.post(
            "/internal/launch/redeem", json={"launch_id": issued.launch_id, "token_sha256": proof}
        ).is_success
    return issued.launch_id, proof, "guacidle"


def _last_input(portal: SeatPortal, lease_id: str) -> datetime | None:
    with Session(portal.engine) as db:
        lease = db.get(SeatLease, lease_id)
        assert lease is not None
        return as_utc(lease.last_input_at) if lease.last_input_at is not None else None


def test_input_reports_move_the_last_input_forward_only_and_a_negative_or_huge_age_is_refused(
    portal: SeatPortal,
) -> None:
    launch_id, proof, lease_id = leased_launch(portal)
    with Session(portal.engine) as db:
        lease = db.get(SeatLease, lease_id)
        assert lease is not None
        handed_over = as_utc(lease.started_at)
    report = {"launch_id": launch_id, "token_sha256": proof}
    with portal.client() as client:
        assert client.post("/internal/launch/input", json={**report, "idle_ms": 5000}).status_code == 200
        assert _last_input(portal, lease_id) is None  # input from before the hand-over is not this person's
        portal.clock.advance(60)
        assert client.post("/internal/launch/input", json={**report, "idle_ms": 30_000}).status_code == 200
        moved = _last_input(portal, lease_id)
        assert moved is not None and timedelta(seconds=29) < moved - handed_over < timedelta(seconds=31)
        assert client.post("/internal/launch/input", json={**report, "idle_ms": 50_000}).status_code == 200
        assert _last_input(portal, lease_id) == moved  # a late report does not move it back
        for age in (-1, -86_400_000, 86_400_001, 10**30, 1.5, "5", True, None):
            answer = client.post("/internal/launch/input", json={**report, "idle_ms": age})
            assert answer.status_code == 422, (age, answer.text)
        assert client.post("/internal/launch/input", json=report).status_code == 422
        assert _last_input(portal, lease_id) == moved
        assert client.post("/internal/launch/input", json={**report, "idle_ms": 0}).status_code == 200
    latest = _last_input(portal, lease_id)
    assert latest is not None and latest > moved and latest <= portal.clock()  # never after the gateway's now
    with Session(portal.engine) as db:
        lease = db.get(SeatLease, lease_id)
        assert lease is not None
        assert portal.broker.idle_seconds(lease, latest + timedelta(seconds=7)) == 7.0
