"""Cut the tracked connections that a seat's changed scope no longer allows.

``from_tunnel`` accepts the packets of established connections before it looks at the allow sets (docs/vpn.md), so
a destination taken out of a live seat's scope would stay reachable over the connections already open to it.
Deleting their conntrack entries turns the next packet either way into a new one, which the sets then judge (TCP
included: with the kernel's default ``nf_conntrack_tcp_loose`` a mid-stream packet is picked up as new, and dropped
as not allowed). Connections the seat's destinations still allow keep their entries.
"""

import ipaddress
import socket
from collections.abc import Mapping, Sequence

from pyroute2 import Conntrack
from pyroute2.conntrack import NFCTAttrTuple

from gateway.vpn.scope import Destination, disjoint_boxes, seat_address

_PROTOCOLS = {
    socket.IPPROTO_TCP: "tcp",
    socket.IPPROTO_UDP: "udp",
    socket.IPPROTO_ICMP: "icmp",
    socket.IPPROTO_ICMPV6: "icmp",  # the scope's icmp is ICMPv6 for an IPv6 seat
}
"""Protocol numbers as the scope names them."""


def cut_disallowed(seats: Mapping[str, Sequence[Destination]], netns: str | None = None) -> int:
    """Delete the conntrack entries of connections opened from each of ``seats`` (an address) that its destinations
    do not allow; how many were deleted. Reads the namespace's whole connection table once per address family."""
    allowed = {str(seat_address(seat)): tuple(destinations) for seat, destinations in seats.items()}
    cut = 0
    for family in (socket.AF_INET, socket.AF_INET6):
        ours = {seat: dests for seat, dests in allowed.items() if (":" in seat) == (family == socket.AF_INET6)}
        if not ours:
            continue
        with Conntrack(nfgen_family=family, netns=netns) as table:
            doomed = [
                entry.tuple_orig
                for entry in table.dump_entries()  # read whole before deleting: a dump cannot be changed under way
                if entry.tuple_orig.saddr in ours and not _allows(ours[entry.tuple_orig.saddr], entry.tuple_orig)
            ]
            for origin in doomed:
                table.entry("del", tuple_orig=origin)
        cut += len(doomed)
    return cut


def _allows(destinations: tuple[Destination, ...], origin: NFCTAttrTuple) -> bool:
    """Whether a connection's original direction (``daddr``, ``proto``, ``dport``) is in the scope."""
    proto, target, port = _PROTOCOLS.get(origin.proto), ipaddress.ip_address(origin.daddr), origin.dport
    return any(
        box_proto == proto and target in network and (proto == "icmp" or (port is not None and low <= port <= high))
        for box_proto, network, low, high in disjoint_boxes(target.version, destinations)
    )
