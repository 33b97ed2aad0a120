"""The userspace backend: wireguard-go (or boringtun) driven through its UAPI socket.

`apply` reads the live peers once and sends every change in one `set=1` transaction (removals first, so an
address taken from one peer can be handed to another in the same request). It never uses `replace_peers`,
which would reset the handshake and counters of peers that already match.
"""

import itertools
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from gateway.vpn import uapi_wire
from gateway.vpn.backend import PeerChanges, PeerSpec, PeerState, plan_changes
from gateway.vpn.interface import configure_link
from gateway.vpn.wireguard_go import WireGuardGo


class UapiBackend:
    """WireGuardBackend for userspace daemons; starts and supervises wireguard-go when none is running."""

    def __init__(
        self,
        netns: str | None = None,
        socket_dir: Path = uapi_wire.SOCKET_DIR,
        on_restart: Callable[[str], None] | None = None,
    ) -> None:
        """`on_restart(name)` runs after a dead daemon was restarted and its interface set up again; the
        peers are gone then, so pass the reconciler's nudge here."""
        self.netns = netns
        self.socket_dir = socket_dir
        self.on_restart = on_restart
        self.daemons: dict[str, WireGuardGo] = {}

    def ensure_interface(self, name: str, private_key: str, listen_port: int, addresses: list[str]) -> None:
        path = uapi_wire.socket_path(name, self.socket_dir)
        if name not in self.daemons:  # a daemon an earlier life left is ended by `start` (see wireguard_go)
            daemon = WireGuardGo(name, self.netns, self.socket_dir)
            daemon.on_restart = lambda: self._restarted(name, private_key, listen_port, addresses)
            daemon.start()
            self.daemons[name] = daemon
        device = uapi_wire.parse_get(uapi_wire.exchange(path, "get=1\n\n"))
        settings = []
        if device.private_key != private_key:
            settings.append(f"private_key={uapi_wire.key_to_hex(private_key)}")
        if device.listen_port != listen_port:
            settings.append(f"listen_port={listen_port}")
        if settings:
            self._set(name, settings)
        configure_link(name, addresses, self.netns)

    def peers(self, name: str) -> dict[str, PeerState]:
        return uapi_wire.parse_get(uapi_wire.exchange(uapi_wire.socket_path(name, self.socket_dir), "get=1\n\n")).peers

    def peer_configs(self, name: str, expected: Mapping[str, PeerSpec] | None = None) -> Mapping[str, PeerSpec]:
        answer = uapi_wire.exchange(uapi_wire.socket_path(name, self.socket_dir), "get=1\n\n")
        return uapi_wire.parse_configs(answer, expected)

    def expect(self, name: str, peers: Mapping[str, PeerSpec]) -> None:
        uapi_wire.expect(peers)

    def set_peer(self, name: str, peer: PeerSpec) -> None:
        self._set(name, uapi_wire.peer_lines(peer))

    def remove_peer(self, name: str, public_key: str) -> None:
        self._set(name, uapi_wire.removal_lines(public_key))

    def apply(self, name: str, desired: Mapping[str, PeerSpec]) -> PeerChanges:
        changes = plan_changes(self.peers(name), desired)
        self.change(name, changes)
        return changes

    def change(self, name: str, changes: PeerChanges, begun: Callable[[], None] | None = None) -> None:
        if changes:
            removals = (line for public_key in changes.to_remove for line in uapi_wire.removal_lines(public_key))
            settings = (line for peer in changes.to_set for line in uapi_wire.peer_lines(peer))
            self._set(name, itertools.chain(removals, settings), begun)

    def stop(self) -> None:
        """Stop the daemons this backend started (their interfaces disappear with them)."""
        for daemon in self.daemons.values():
            daemon.stop()
        self.daemons.clear()

    def _set(self, name: str, lines: Iterable[str], begun: Callable[[], None] | None = None) -> None:
        uapi_wire.exchange(uapi_wire.socket_path(name, self.socket_dir), uapi_wire.set_request(lines, begun))

    def _restarted(self, name: str, private_key: str, listen_port: int, addresses: list[str]) -> None:
        self.ensure_interface(name, private_key, listen_port, addresses)
        if self.on_restart:
            self.on_restart(name)
