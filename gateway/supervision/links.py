"""Link quality of each live session's tunnel, from the handshakes the VPN reconciler samples.

One query for all sessions (the wall asks every tick), reading the VPN's tunnel leases; the per-session view is
``gateway.vpn.health.tunnel_health``.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlmodel import Session, col, select

from gateway.clock import as_utc
from gateway.vpn.models import LeaseState, TunnelLease


class LinkQuality(StrEnum):
    GOOD = "good"
    DOWN = "down"
    """A tunnel is wanted but no handshake came within the threshold."""
    NONE = "none"
    """The session has no tunnel (browser-only, or no certificate-bound key)."""


@dataclass(frozen=True)
class Link:
    quality: LinkQuality
    latest_handshake_at: datetime | None


def link_quality(db: Session, session_ids: Sequence[str], now: datetime, down_after_seconds: float) -> dict[str, Link]:
    """Every given session's link; a fresh lease gets ``down_after_seconds`` to make its first handshake."""
    links = {session_id: Link(LinkQuality.NONE, None) for session_id in session_ids}
    if not session_ids:
        return links
    leases = db.exec(
        select(TunnelLease.session_id, TunnelLease.latest_handshake_at, TunnelLease.created_at).where(
            col(TunnelLease.session_id).in_(list(session_ids)), TunnelLease.state == LeaseState.DESIRED
        )
    ).all()
    for session_id, handshake_at, created_at in leases:
        handshake = as_utc(handshake_at) if handshake_at else None
        reference = handshake or as_utc(created_at)
        quality = LinkQuality.GOOD if (now - reference).total_seconds() < down_after_seconds else LinkQuality.DOWN
        links[session_id] = Link(quality, handshake)
    return links
