"""What every WireGuard backend offers, and the one reconciliation plan they all apply.

A backend drives one kind of WireGuard implementation (the kernel through netlink, or a userspace daemon
through its UAPI socket). The domain reads the same whichever runs: peers are keyed by their base64 public
key, and `apply` makes an interface hold exactly the desired peers while leaving matching peers untouched,
so a live session keeps its handshake and counters across every reconcile.
"""

import functools
import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


class WireGuardError(Exception):
    """A WireGuard interface could not be read or configured; the message says what to check."""


@functools.lru_cache(maxsize=1 << 17)
def normalise_cidr(cidr: str) -> str:
    """Canonical text of a network ("10.0.0.5" → "10.0.0.5/32"), so specs and live state compare equal.

    Cached: every reconcile reads the same few thousand addresses back, and parsing them dominated a
    10,000-peer apply (0.7 of 1.0 s)."""
    return str(ipaddress.ip_network(cidr, strict=False))


@dataclass(frozen=True)
class PeerSpec:
    """The desired state of one peer: who may talk, from which inner addresses, and how often to keep alive."""

    public_key: str
    allowed_ips: frozenset[str]
    persistent_keepalive: int | None = None

    @classmethod
    def of(cls, public_key: str, allowed_ips: list[str], persistent_keepalive: int | None = None) -> "PeerSpec":
        """Build a spec with normalised networks (the form live state is compared in)."""
        return cls(public_key, frozenset(normalise_cidr(c) for c in allowed_ips), persistent_keepalive)


@functools.lru_cache(maxsize=1 << 17)
def interned(spec: PeerSpec) -> PeerSpec:
    """The one object of all equal specs: a safety-net pass compares 10,000 desired specs with 10,000 live ones, and
    a dict comparison of specs that are the same objects does not call ``__eq__`` on any of them."""
    return spec


@dataclass(frozen=True)
class PeerState:
    """One peer as the interface reports it now."""

    public_key: str
    allowed_ips: frozenset[str]
    endpoint: str | None = None
    latest_handshake: datetime | None = None
    rx_bytes: int = 0
    tx_bytes: int = 0
    persistent_keepalive: int | None = None

    def matches(self, spec: PeerSpec) -> bool:
        """True when applying `spec` would change nothing (0 s keepalive means "off", like None)."""
        return self.allowed_ips == spec.allowed_ips and (self.persistent_keepalive or None) == (
            spec.persistent_keepalive or None
        )


@dataclass(frozen=True)
class PeerChanges:
    """The smallest set of operations turning the live peers into the desired ones."""

    to_set: list[PeerSpec] = field(default_factory=list)
    to_remove: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.to_set or self.to_remove)


def plan_changes(current: Mapping[str, PeerState | PeerSpec], desired: Mapping[str, PeerSpec]) -> PeerChanges:
    """Peers to add or fix, and peers nobody authorised; a peer already matching appears in neither. ``current`` may
    be the live state or only the live configuration (``peer_configs``)."""
    to_set = [
        spec
        for key, spec in desired.items()
        if (live := current.get(key)) is None or (live != spec and not _matches(live, spec))
    ]
    to_remove = [key for key in current if key not in desired]
    return PeerChanges(to_set=to_set, to_remove=to_remove)


def _matches(current: PeerState | PeerSpec, spec: PeerSpec) -> bool:
    if isinstance(current, PeerState):
        return current.matches(spec)
    return current.allowed_ips == spec.allowed_ips and (current.persistent_keepalive or None) == (
        spec.persistent_keepalive or None
    )


class WireGuardBackend(Protocol):
    """One WireGuard implementation; every method addresses the interface by name."""

    def ensure_interface(self, name: str, private_key: str, listen_port: int, addresses: list[str]) -> None:
        """Make the interface exist, up, with this key, port and addresses (CIDR, e.g. "10.77.0.1/16")."""

    def peers(self, name: str) -> dict[str, PeerState]:
        """The live peers, by base64 public key."""

    def peer_configs(self, name: str, expected: Mapping[str, PeerSpec] | None = None) -> Mapping[str, PeerSpec]:
        """The live peers' configuration only (no handshakes or counters): what a comparison needs, read cheaply.
        When it is exactly ``expected`` (what the last pass installed), that very mapping may come back, so the
        comparison of an unchanged interface is one identity check."""

    def expect(self, name: str, peers: Mapping[str, PeerSpec]) -> None:
        """The interface is being made to hold exactly ``peers`` (the mapping the next ``peer_configs`` will be given
        as ``expected``): prepare that comparison now, beside the change, rather than in the next pass. May be called
        on another thread than the change; doing nothing is correct."""

    def set_peer(self, name: str, peer: PeerSpec) -> None:
        """Add or update one peer; its allowed IPs are replaced, not appended to."""

    def remove_peer(self, name: str, public_key: str) -> None:
        """Remove one peer; its tunnel stops carrying packets at once."""

    def apply(self, name: str, desired: Mapping[str, PeerSpec]) -> PeerChanges:
        """Make the interface hold exactly `desired`; returns what it changed (empty when nothing did)."""

    def change(self, name: str, changes: PeerChanges, begun: Callable[[], None] | None = None) -> None:
        """Carry out `changes` (removals first) without reading the live peers: for a change already planned.
        ``begun`` is called at most once, as soon as the implementation has the first of them to work on: work meant
        to run beside the change can start then rather than compete with its start. Callers must not rely on it
        (nothing to send, or no such moment: it may never be called)."""
