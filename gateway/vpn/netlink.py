"""The kernel backend: WireGuard's generic-netlink family through pyroute2 (>= 0.9.3).

pyroute2's `WireGuard.set` carries at most one peer per call, appends allowed IPs unless
`replace_allowed_ips` is set, and `info()` may split one interface over several messages (one dump part per
batch of peers), so peers are merged by public key. Keys come back base64-encoded as bytes.
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from pyroute2 import WireGuard
from pyroute2.netlink.exceptions import NetlinkError

from gateway.vpn.backend import PeerChanges, PeerSpec, PeerState, WireGuardError, normalise_cidr, plan_changes
from gateway.vpn.interface import configure_link, create_kernel_link, link_exists


class NetlinkBackend:
    """WireGuardBackend for the Linux kernel module."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns

    def ensure_interface(self, name: str, private_key: str, listen_port: int, addresses: list[str]) -> None:
        if not link_exists(name, self.netns):
            create_kernel_link(name, self.netns)
        with self._socket() as wg:
            wg.set(name, private_key=private_key, listen_port=listen_port)
        configure_link(name, addresses, self.netns)

    def peers(self, name: str) -> dict[str, PeerState]:
        with self._socket() as wg:
            try:
                messages = list(wg.info(name))
            except NetlinkError as exc:
                raise WireGuardError(f"cannot read WireGuard interface {name!r}: {exc}") from exc
        return merge_peers(messages)

    def peer_configs(self, name: str, expected: Mapping[str, PeerSpec] | None = None) -> Mapping[str, PeerSpec]:
        return {
            key: PeerSpec(key, state.allowed_ips, state.persistent_keepalive) for key, state in self.peers(name).items()
        }

    def expect(self, name: str, peers: Mapping[str, PeerSpec]) -> None:
        """Nothing to prepare: a netlink dump is compared peer by peer."""

    def set_peer(self, name: str, peer: PeerSpec) -> None:
        settings: dict[str, Any] = {
            "public_key": peer.public_key,
            "replace_allowed_ips": True,
            "allowed_ips": sorted(peer.allowed_ips),
            "persistent_keepalive": peer.persistent_keepalive or 0,
        }
        self._set(name, settings)

    def remove_peer(self, name: str, public_key: str) -> None:
        self._set(name, {"public_key": public_key, "remove": True})

    def apply(self, name: str, desired: Mapping[str, PeerSpec]) -> PeerChanges:
        changes = plan_changes(self.peers(name), desired)
        self.change(name, changes)
        return changes

    def change(self, name: str, changes: PeerChanges, begun: Callable[[], None] | None = None) -> None:
        for public_key in changes.to_remove:
            self.remove_peer(name, public_key)
        for peer in changes.to_set:
            self.set_peer(name, peer)
            if begun is not None:
                begun()
                begun = None

    def _set(self, name: str, peer: dict[str, Any]) -> None:
        with self._socket() as wg:
            try:
                wg.set(name, peer=peer)
            except NetlinkError as exc:
                key = peer["public_key"]
                raise WireGuardError(f"WireGuard interface {name!r} refused peer {key}: {exc}") from exc

    def _socket(self) -> WireGuard:
        try:
            return WireGuard(netns=self.netns)
        except (NetlinkError, OSError) as exc:
            raise WireGuardError(f"the kernel's WireGuard netlink family is not available: {exc}") from exc


def merge_peers(messages: Iterable[Any]) -> dict[str, PeerState]:
    """Fold the peers of every dump message into one map; a peer split over messages keeps all its IPs."""
    merged: dict[str, PeerState] = {}
    for message in messages:
        for peer in message.get_attr("WGDEVICE_A_PEERS") or []:
            state = _peer_state(peer)
            earlier = merged.get(state.public_key)
            if earlier is not None:
                # the kernel continues a peer with many allowed IPs in the next message: only the key and
                # the rest of the IPs are there, so keep the first message's handshake and counters
                state = replace(earlier, allowed_ips=earlier.allowed_ips | state.allowed_ips)
            merged[state.public_key] = state
    return merged


def _peer_state(peer: Any) -> PeerState:
    key = _text(peer.get_attr("WGPEER_A_PUBLIC_KEY"))
    handshake = peer.get_attr("WGPEER_A_LAST_HANDSHAKE_TIME")
    seconds = int(handshake["tv_sec"]) if handshake is not None else 0
    endpoint = peer.get_attr("WGPEER_A_ENDPOINT")
    keepalive = peer.get_attr("WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL") or 0
    return PeerState(
        public_key=key,
        allowed_ips=frozenset(
            normalise_cidr(ip["addr"]) for ip in peer.get_attr("WGPEER_A_ALLOWEDIPS") or [] if "addr" in ip
        ),
        endpoint=_endpoint(endpoint),
        latest_handshake=datetime.fromtimestamp(seconds, UTC) if seconds else None,
        rx_bytes=int(peer.get_attr("WGPEER_A_RX_BYTES") or 0),
        tx_bytes=int(peer.get_attr("WGPEER_A_TX_BYTES") or 0),
        persistent_keepalive=int(keepalive) or None,
    )


def _endpoint(endpoint: Any) -> str | None:
    """ "203.0.113.5:51820" or "[2001:db8::1]:51820", as `wg` prints it; None before the peer was seen."""
    if endpoint is None or not endpoint.get("port"):
        return None
    address = endpoint["addr"]
    return f"[{address}]:{endpoint['port']}" if ":" in address else f"{address}:{endpoint['port']}"


def _text(value: Any) -> str:
    """pyroute2 decodes keys to base64 bytes; the gateway keeps them as str."""
    return value.decode() if isinstance(value, bytes) else str(value)
