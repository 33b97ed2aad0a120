"""Compile an effective policy into the destinations a seat's tunnel may reach (default deny)."""

from dataclasses import dataclass

from policy.effective import EffectivePolicy
from policy.values import PROTOCOLS, Protocol


@dataclass(frozen=True, slots=True)
class NetworkScope:
    """Allowed (cidr, proto, port) tuples for the VPN's nftables rules; port None = every port.

    A policy destination without a protocol is spelt out as tcp, udp and icmp, so every tuple names
    the protocol the firewall rule matches.
    """

    allowed: tuple[tuple[str, Protocol, int | None], ...]


def compile_network_scope(effective: EffectivePolicy) -> NetworkScope:
    return NetworkScope(
        tuple(
            (str(item.network), protocol, item.port)
            for item in effective.network_scope
            for protocol in ((item.protocol,) if item.protocol else PROTOCOLS)
        )
    )
