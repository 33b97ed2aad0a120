"""What each seat may reach through the tunnel, as plain data checked before it becomes firewall rules.

A seat is one inner address of a peer (its IPv4 /32 or IPv6 /128); its destinations come from the policy
compiled for the home session. Everything not listed is denied, and no seat may reach another seat.
"""

import functools
import ipaddress
import itertools
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Protocol = Literal["tcp", "udp", "icmp"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_INTERFACE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")  # IFNAMSIZ - 1, and nothing nft would parse


class ScopeError(ValueError):
    """A scope cannot be turned into rules; the message names the seat or destination at fault."""


@dataclass(frozen=True)
class Destination:
    """One allowed destination: a network, a protocol and a port (or inclusive range); None = any port."""

    cidr: str
    proto: Protocol
    port: int | tuple[int, int] | None = None

    def network(self) -> Network:
        return ipaddress.ip_network(self.cidr, strict=False)

    def port_range(self) -> tuple[int, int]:
        if self.port is None:
            return (0, 65535)
        return (self.port, self.port) if isinstance(self.port, int) else self.port


@dataclass(frozen=True)
class TunnelScope:
    """The whole scope of one tunnel interface: every seat address and what it may reach.

    A seat's IPv4 and IPv6 addresses may share one destination list: each only gets the destinations of its
    own address family.
    """

    interface: str
    seats: Mapping[str, Sequence[Destination]]
    pools: tuple[Network, ...] = ()
    """The seats' address pools: a packet from one of their addresses is only taken from the tunnel, and this host
    sends from none but its own (``nft.render``)."""
    own: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...] = ()
    """The gateway's own addresses in them: the only ones of them this host may send from (``nft.render``)."""

    def validate(self) -> None:
        """Raise ScopeError on anything that would make a wrong or unparsable rule; fail closed."""
        if not _INTERFACE_NAME.match(self.interface):
            raise ScopeError(f"not a usable interface name: {self.interface!r}")
        checked: set[int] = set()  # seats share a few lists: each is checked once, found by identity (cheaper
        # than hashing its Destinations for the cache, at 20,000 seats)
        for seat, destinations in self.seats.items():
            seat_address(seat)
            if id(destinations) in checked:
                continue
            try:
                _check_destinations(tuple(destinations))
            except ScopeError as error:
                raise ScopeError(f"seat {seat}: {error}") from None
            checked.add(id(destinations))


@functools.lru_cache(maxsize=1 << 17)
def seat_address(seat: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """A seat is one host: "10.77.0.2", "10.77.0.2/32" or "fd77::2/128"; anything wider is refused.

    Cached: every load of the scope names the same 20,000 seat addresses, and parsing them took most of its second."""
    try:
        network = ipaddress.ip_network(seat, strict=True)
    except ValueError as exc:
        raise ScopeError(f"seat {seat!r} is not an address: {exc}") from exc
    if network.num_addresses != 1:
        raise ScopeError(f"seat {seat!r} must be one address (/32 or /128), not a network")
    return network.network_address


@functools.lru_cache(maxsize=4096)
def _check_destinations(destinations: tuple[Destination, ...]) -> None:
    # Cached (a failure is not): thousands of seats share the few destination lists of their groups' policies.
    for destination in destinations:
        try:
            destination.network()
        except ValueError as exc:
            raise ScopeError(f"destination {destination.cidr!r} is not a network: {exc}") from exc
        if destination.proto not in ("tcp", "udp", "icmp"):
            raise ScopeError(f"protocol {destination.proto!r} is not tcp, udp or icmp")
        if destination.proto == "icmp" and destination.port is not None:
            raise ScopeError(f"icmp to {destination.cidr} cannot have a port")
        low, high = destination.port_range()
        if not 0 <= low <= high <= 65535:
            raise ScopeError(f"port {destination.port!r} to {destination.cidr} is out of range")


def disjoint_rules(
    seat: ipaddress.IPv4Address | ipaddress.IPv6Address, destinations: Sequence[Destination]
) -> list[tuple[Protocol, Network, int, int]]:
    """The seat's destinations of its own family as non-overlapping (protocol, network, first, last port).

    nftables' concatenated interval sets refuse an element that starts or ends inside another one ("File
    exists"), so overlapping policy lines (10.0.0.0/8 any port, 10.1.0.0/16 port 443) are first cut into
    disjoint boxes that together allow exactly the same traffic.
    """
    return disjoint_boxes(seat.version, tuple(destinations))


@functools.lru_cache(maxsize=1024)
def disjoint_boxes(version: int, destinations: tuple[Destination, ...]) -> list[tuple[Protocol, Network, int, int]]:
    """``disjoint_rules`` for any seat of IP ``version`` (cached: thousands of seats share a handful of group
    policies, and cutting is the costly part)."""
    boxes: dict[Protocol, list[tuple[Network, int, int]]] = defaultdict(list)
    for destination in destinations:
        network = destination.network()
        if network.version == version:
            boxes[destination.proto].append((network, *destination.port_range()))
    return [(proto, network, low, high) for proto, found in sorted(boxes.items()) for network, low, high in _cut(found)]


def _cut(boxes: list[tuple[Network, int, int]]) -> list[tuple[Network, int, int]]:
    """Split at every port boundary, merge the networks covering each port slice, join equal slices."""
    edges = sorted({low for _, low, _ in boxes} | {high + 1 for _, _, high in boxes})
    slices: list[tuple[int, int, list[Network]]] = []
    for low, next_low in itertools.pairwise(edges):
        covering = [net for net, first, last in boxes if first <= low and next_low - 1 <= last]
        merged = list(ipaddress.collapse_addresses(covering))  # type: ignore[type-var]  # one family per seat
        if slices and slices[-1][2] == merged and slices[-1][1] == low - 1:
            slices[-1] = (slices[-1][0], next_low - 1, merged)
        elif merged:
            slices.append((low, next_low - 1, merged))
    return [(net, low, high) for low, high, nets in slices for net in nets]
