"""Make the WireGuard interface and the nftables scope match the live sessions' leases.

Desired peers are read from the database (a lease that is desired AND whose session is active, in time and
still bound to the same key), the transaction is ended, and only then is the world touched: the scope first,
so a new peer never carries a packet its scope does not allow, then the peers through `backend.apply`, which
leaves matching peers untouched (no flapping: handshakes and counters survive).
"""

import functools
import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_
from sqlmodel import Session, col, select

from gateway.sessions.models import HomeSession, SessionState
from gateway.vpn import nft
from gateway.vpn.backend import PeerChanges, PeerSpec, WireGuardBackend
from gateway.vpn.models import LeaseState, TunnelLease
from gateway.vpn.scope import Destination, TunnelScope
from gateway.vpn.settings import VpnSettings

log = logging.getLogger(__name__)
Seats = Mapping[str, Sequence[Destination]]


@dataclass(frozen=True)
class DesiredPeer:
    """One peer that should exist now, with the seat addresses and what they may reach."""

    session_id: str
    public_key: str
    ipv4: str
    ipv6: str
    destinations: tuple[Destination, ...]

    def spec(self) -> PeerSpec:
        return PeerSpec.of(self.public_key, [f"{self.ipv4}/32", f"{self.ipv6}/128"])


@dataclass(frozen=True)
class ReconcileResult:
    peers: frozenset[str]
    """The public keys that were desired (and are now installed)."""
    changes: PeerChanges
    seats: Seats
    scope_loaded: bool


@functools.lru_cache(maxsize=4096)
def _destinations(scope_json: str) -> tuple[Destination, ...]:
    # Cached: thousands of leases share the few scopes of their groups.
    return tuple(Destination(cidr, proto, port) for cidr, proto, port in json.loads(scope_json))


def desired_peers(db: Session, now: datetime, node: str | None = None) -> list[DesiredPeer]:
    """Peers the sessions' state authorises right now, on ``node`` when one is named (its own leases, and the
    unowned ones written before nodes were named). A key claimed by two live leases gets no peer (fail closed:
    cryptokey routing cannot tell the two apart)."""
    query = (
        select(  # type: ignore[call-overload]  # SQLModel types select() of at most four columns
            TunnelLease.session_id, TunnelLease.public_key, TunnelLease.ipv4, TunnelLease.ipv6, TunnelLease.scope
        )
        .join(HomeSession, col(HomeSession.id) == col(TunnelLease.session_id))
        .where(TunnelLease.state == LeaseState.DESIRED)
        .where(HomeSession.state == SessionState.ACTIVE)
        .where(col(HomeSession.expires_at) > now)
        .where(or_(col(HomeSession.cert_not_after).is_(None), col(HomeSession.cert_not_after) > now))
        .where(col(HomeSession.wireguard_key) == col(TunnelLease.public_key))
    )
    if node is not None:
        query = query.where(or_(col(TunnelLease.node) == node, col(TunnelLease.node).is_(None)))
    rows = db.exec(query).all()
    claims = Counter(row[1] for row in rows)
    for key, count in claims.items():
        if count > 1:
            log.warning("WireGuard key %s is claimed by %d live sessions; none of them gets a tunnel", key, count)
    return [
        DesiredPeer(session_id, key, ipv4, ipv6, _destinations(scope))
        for session_id, key, ipv4, ipv6, scope in rows
        if claims[key] == 1
    ]


def seats_of(peers: Sequence[DesiredPeer]) -> dict[str, tuple[Destination, ...]]:
    seats: dict[str, tuple[Destination, ...]] = {}
    for peer in peers:
        seats[peer.ipv4] = seats[peer.ipv6] = peer.destinations
    return seats


def reconcile(
    db: Session,
    backend: WireGuardBackend,
    settings: VpnSettings,
    now: datetime,
    previous: ReconcileResult | None = None,
    node: str | None = None,
) -> ReconcileResult:
    """Read the desired peers, commit (ending the caller's transaction), then make the interface match.

    `previous` is the last pass's result: the nftables table is replaced only when the scope differs from the
    one it loaded, or when the table is gone (deleted by hand). Peers nobody authorises any more are removed
    before that reload (about a second for 10,000 seats), so a revocation never waits for it; new peers are
    added after it, so no peer carries a packet before its scope is in force. When nft refuses, removals
    still happen and the error is raised.
    """
    peers = desired_peers(db, now, node)
    db.commit()
    specs = {peer.public_key: peer.spec() for peer in peers}
    seats = seats_of(peers)
    scope_loaded = False
    if settings.firewall and (previous is None or seats != previous.seats or not nft.loaded(settings.netns)):
        if previous is not None:  # after a restart nothing is known yet: live peers are not touched before the load
            backend.apply(settings.interface, {key: spec for key, spec in specs.items() if key in previous.peers})
        nft.apply(TunnelScope(settings.interface, seats), settings.netns)
        scope_loaded = True
    changes = backend.apply(settings.interface, specs)
    if changes:
        log.info("VPN peers: %d set, %d removed", len(changes.to_set), len(changes.to_remove))
    return ReconcileResult(frozenset(specs), changes, seats, scope_loaded)
