"""Leases and desired peers on both databases: the session's state is the authority, not the lease."""

import json
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, select

from gateway.audit.models import AuditEvent
from gateway.clock import as_utc
from gateway.sessions.models import EndReason, SessionState
from gateway.sessions.service import end_session
from gateway.vpn.backend import PeerState
from gateway.vpn.health import record_samples, tunnel_health
from gateway.vpn.leases import lease_for_session, lease_missing_sessions, retire_ended_leases
from gateway.vpn.models import AddressAssignment, LeaseState, TunnelLease
from gateway.vpn.reconcile import desired_peers
from gateway.vpn.settings import VpnSettings
from tests.gateway.vpn.agents import agent_session
from tests.vpn.keys import key_pair

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
SETTINGS = VpnSettings()


def test_a_lease_carries_the_certificate_key_the_agent_addresses_and_the_policy_scope(db: Session) -> None:
    key = key_pair()[1]
    session, _ = agent_session(db, "li.na", NOW, wireguard_key=key)
    lease = lease_for_session(db, session, NOW, SETTINGS)
    assert lease is not None
    assert (lease.public_key, lease.ipv4, lease.ipv6, lease.state) == (key, "10.77.0.2", "fd77::2", LeaseState.DESIRED)
    assert json.loads(lease.scope) == [["10.77.0.1/32", "tcp", 443]]  # the embedded default policy's agent scope
    assert lease_for_session(db, session, NOW, SETTINGS) is lease
    assert db.exec(select(AuditEvent).where(AuditEvent.action == "vpn.lease")).first() is not None


def test_no_lease_without_a_certificate_bound_key_or_before_activation(db: Session) -> None:
    keyless, _ = agent_session(db, "li.na", NOW)
    pending, _ = agent_session(
        db, "wang.fang", NOW, wireguard_key=key_pair()[1], state=SessionState.PENDING_SECOND_FACTOR
    )
    assert lease_for_session(db, keyless, NOW, SETTINGS) is None
    assert lease_for_session(db, pending, NOW, SETTINGS) is None
    assert db.exec(select(TunnelLease)).all() == []


def test_desired_peers_follow_the_session_state_even_without_a_nudge(db: Session) -> None:
    sessions = {name: agent_session(db, name, NOW, wireguard_key=key_pair()[1])[0] for name in ("a", "b", "c")}
    assert lease_missing_sessions(db, NOW, SETTINGS) == 3
    assert {p.session_id for p in desired_peers(db, NOW).peers.values()} == {s.id for s in sessions.values()}
    # the session ends but nobody retires the lease (a lost nudge): the peer is still not desired
    sessions["a"].state = SessionState.ENDED
    db.add(sessions["a"])
    # a session past its maximum length that no sweep has ended yet
    sessions["b"].expires_at = NOW - timedelta(seconds=1)
    db.add(sessions["b"])
    db.flush()
    assert [p.session_id for p in desired_peers(db, NOW).peers.values()] == [sessions["c"].id]


def test_a_key_claimed_by_two_live_sessions_gets_no_peer(db: Session) -> None:
    key = key_pair()[1]
    for login in ("li.na", "wang.fang"):
        agent_session(db, login, NOW, wireguard_key=key)
    lease_missing_sessions(db, NOW, SETTINGS)
    assert desired_peers(db, NOW).peers == {}


def test_ending_the_session_retires_the_lease_and_releases_the_address(db: Session) -> None:
    session, _ = agent_session(db, "li.na", NOW, wireguard_key=key_pair()[1])
    lease = lease_for_session(db, session, NOW, SETTINGS)
    assert lease is not None
    end_session(db, session, EndReason.LOGOUT, actor="li.na", now=NOW)
    assert retire_ended_leases(db, NOW) == 1
    assert lease.state is LeaseState.REMOVED and lease.removed_at == NOW
    address = db.exec(select(AddressAssignment).where(AddressAssignment.person_id == "test:li.na")).one()
    assert address.released_at is not None and as_utc(address.released_at) == NOW
    assert retire_ended_leases(db, NOW) == 0


def test_health_keeps_the_latest_handshake_traffic_and_endpoint(db: Session) -> None:
    key = key_pair()[1]
    session, _ = agent_session(db, "li.na", NOW, wireguard_key=key)
    lease_for_session(db, session, NOW, SETTINGS)
    shake = NOW - timedelta(seconds=30)
    live = {key: PeerState(key, frozenset({"10.77.0.2/32"}), "192.0.2.7:40000", shake, 1200, 3400)}
    assert record_samples(db, live, NOW) == 1
    assert record_samples(db, live, NOW + timedelta(seconds=5)) == 0  # nothing moved, nothing written
    health = tunnel_health(db, session.id)
    assert (health.endpoint, health.rx_bytes, health.tx_bytes) == ("192.0.2.7:40000", 1200, 3400)
    assert health.latest_handshake_at == shake and health.handshake_age_seconds(NOW) == 30
