"""Tunnel health for supervision: each peer's latest handshake, traffic and endpoint, sampled by the reconciler."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from gateway.clock import as_utc
from gateway.errors import NotFound
from gateway.vpn.backend import PeerState
from gateway.vpn.models import LeaseState, TunnelLease


@dataclass(frozen=True)
class TunnelHealth:
    session_id: str
    login: str
    ipv4: str
    ipv6: str
    state: LeaseState
    latest_handshake_at: datetime | None
    endpoint: str | None
    rx_bytes: int
    tx_bytes: int
    sampled_at: datetime | None

    def handshake_age_seconds(self, now: datetime) -> float | None:
        """Seconds since the last handshake; WireGuard re-handshakes every 2 minutes while traffic flows."""
        return None if self.latest_handshake_at is None else (now - self.latest_handshake_at).total_seconds()


def record_samples(db: Session, live: Mapping[str, PeerState], now: datetime) -> int:
    """Store what the interface reports for every desired lease; rows whose figures did not move are left alone."""
    leases = db.exec(select(TunnelLease).where(TunnelLease.state == LeaseState.DESIRED)).all()
    written = 0
    for lease in leases:
        peer = live.get(lease.public_key)
        if peer is None:
            continue
        sample = (peer.latest_handshake, peer.endpoint, peer.rx_bytes, peer.tx_bytes)
        stored = (
            as_utc(lease.latest_handshake_at) if lease.latest_handshake_at else None,
            lease.endpoint,
            lease.rx_bytes,
            lease.tx_bytes,
        )
        if sample != stored:
            lease.latest_handshake_at, lease.endpoint, lease.rx_bytes, lease.tx_bytes = sample
            lease.health_sampled_at = now
            db.add(lease)
            written += 1
    return written


def tunnel_health(db: Session, session_id: str) -> TunnelHealth:
    """The latest sample of a session's tunnel (the removed lease too, so a supervisor sees the last figures)."""
    lease = db.exec(
        select(TunnelLease).where(TunnelLease.session_id == session_id).order_by(col(TunnelLease.id).desc())
    ).first()
    if lease is None:
        raise NotFound(f"session {session_id} has no tunnel (no certificate-bound WireGuard key, or not active)")
    return TunnelHealth(
        session_id=lease.session_id,
        login=lease.login,
        ipv4=lease.ipv4,
        ipv6=lease.ipv6,
        state=lease.state,
        latest_handshake_at=as_utc(lease.latest_handshake_at) if lease.latest_handshake_at else None,
        endpoint=lease.endpoint,
        rx_bytes=lease.rx_bytes,
        tx_bytes=lease.tx_bytes,
        sampled_at=as_utc(lease.health_sampled_at) if lease.health_sampled_at else None,
    )
