"""Leases and desired peers on both databases: the session's state is the authority, not the lease."""

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import Session, select

from gateway.audit.models import AuditEvent
from gateway.audit.service import verify_chain
from gateway.clock import as_utc
from gateway.db import session_scope
from gateway.sessions.models import EndReason, HomeSession, SessionState
from gateway.sessions.service import end_session
from gateway.vpn.backend import PeerState
from gateway.vpn.health import record_samples, tunnel_health
from gateway.vpn.leases import lease_for_session, lease_missing_sessions, retire_ended_leases
from gateway.vpn.models import AddressAssignment, LeaseState, TunnelLease
from gateway.vpn.reconcile import desired_peers, desired_version
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


def test_a_full_read_holds_until_the_first_live_session_or_its_certificate_runs_out(db: Session) -> None:
    """``PeerPlan.until``: the earliest end of a live lease's session or of its certificate, read with the rows; a
    session no longer live does not count, whenever it would have ended."""

    def signed_in(login: str, lifetime: timedelta, certificate_for: timedelta | None) -> HomeSession:
        session = agent_session(db, login, NOW, wireguard_key=key_pair()[1], lifetime=lifetime)[0]
        session.cert_not_after = None if certificate_for is None else NOW + certificate_for
        db.add(session)
        return session

    certificate_first = signed_in("li.na", timedelta(hours=8), timedelta(hours=3))
    session_first = signed_in("wang.fang", timedelta(hours=2), None)
    signed_in("chen.jie", timedelta(hours=5), timedelta(hours=9))
    ended = signed_in("zhou.min", timedelta(hours=1), timedelta(minutes=30))
    ended.state = SessionState.ENDED
    db.add(ended)
    assert lease_missing_sessions(db, NOW, SETTINGS) == 3
    assert desired_peers(db, NOW).until == NOW + timedelta(hours=2)
    session_first.state = SessionState.ENDED
    db.add(session_first)
    db.flush()
    full = desired_peers(db, NOW)
    assert (full.until, full.retiring) == (NOW + timedelta(hours=3), {session_first.id})
    certificate_first.cert_not_after = None
    db.add(certificate_first)
    db.flush()
    assert desired_peers(db, NOW).until == NOW + timedelta(hours=5)
    assert desired_peers(db, NOW + timedelta(hours=8)).until is None  # nobody live any more


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


def test_the_desired_state_version_moves_with_every_write_a_full_read_depends_on_and_with_no_other(
    engine: Engine,
) -> None:
    """The triggers of migration 0021, committed as the services commit (PostgreSQL bumps at commit): a node's version
    moves with its own sessions and leases and with leases of no node, never with another node's or with activity."""

    def versions() -> tuple[int, int, int]:
        with session_scope(engine) as db:
            return desired_version(db), desired_version(db, "a"), desired_version(db, "b")

    def moved(write: Callable[[Session], object]) -> tuple[bool, bool, bool]:
        """Whether the version of every node, of a and of b moved when ``write`` was committed."""
        before = versions()
        with session_scope(engine) as db:
            write(db)
        after = versions()
        return after[0] != before[0], after[1] != before[1], after[2] != before[2]

    def on_a(db: Session) -> tuple[TunnelLease, HomeSession]:
        lease = db.exec(select(TunnelLease)).one()
        return lease, db.get_one(HomeSession, lease.session_id)

    sign_in = {"wireguard_key": key_pair()[1], "lifetime": timedelta(hours=2), "node": "a"}
    # a keyed session signed in on a: a's leases may be missing
    assert moved(lambda db: agent_session(db, "li.na", NOW, **sign_in)) == (True, True, False)
    assert moved(lambda db: lease_missing_sessions(db, NOW, SETTINGS, node="a")) == (True, True, False)
    with session_scope(engine) as db:
        full = desired_peers(db, NOW, node="a")
        assert full.until == NOW + timedelta(hours=2)  # the session's end: the read is stale from then on
    health = {key: PeerState(key, frozenset(), "192.0.2.7:1", NOW, 1, 2) for key in full.peers}
    assert moved(lambda db: record_samples(db, health, NOW)) == (False, False, False)
    assert moved(lambda db: setattr(on_a(db)[1], "last_seen_at", NOW + timedelta(minutes=1))) == (False, False, False)
    assert moved(lambda db: setattr(on_a(db)[0], "scope", "[]")) == (True, True, False)
    assert moved(lambda db: setattr(on_a(db)[0], "node", None)) == (True, True, True)  # a lease of no node: everyone's
    assert moved(lambda db: setattr(on_a(db)[1], "expires_at", NOW + timedelta(hours=1))) == (True, True, True)
    ended = moved(lambda db: end_session(db, on_a(db)[1], EndReason.LOGOUT, actor="li.na", now=NOW))
    assert ended == (True, True, True)
    assert moved(lambda db: retire_ended_leases(db, NOW)) == (True, True, True)
    assert moved(lambda db: db.delete(on_a(db)[0])) == (True, True, True)


def test_a_pass_writes_and_audits_more_leases_than_pythons_recursion_limit(db: Session) -> None:
    """A restart's first pass at shift start: every lease audited, the chain whole. (Audited in one `record_all`,
    PostgreSQL's one statement for 1,100 rows exceeded the recursion limit as SQLAlchemy compiled it.)"""
    key = key_pair()[1]  # one key for all: only the count matters here, not whose peer is installed
    for n in range(1100):
        agent_session(db, f"agent{n:04d}", NOW, wireguard_key=key)
    assert lease_missing_sessions(db, NOW, SETTINGS) == 1100
    granted = db.exec(select(AuditEvent).where(AuditEvent.action == "vpn.lease")).all()
    assert len(granted) == 1100
    assert verify_chain(db).first_bad_seq is None
