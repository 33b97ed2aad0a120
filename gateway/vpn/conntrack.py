"""Cut the tracked connections that a seat's changed scope no longer allows.

``from_tunnel`` accepts the packets of established connections before it looks at the allow sets (docs/vpn.md), so
a destination taken out of a live seat's scope would stay reachable over the connections already open to it.
Deleting their conntrack entries turns the next packet either way into a new one, which the sets then judge (TCP
included: with the kernel's default ``nf_conntrack_tcp_loose`` a mid-stream packet is picked up as new, and dropped
as not allowed). Connections the seat's destinations still allow keep their entries; a seat whose tunnel went (given
no destination) keeps none, nor, when the pools are named, does any address of them that is no seat.
"""

import errno
import ipaddress
import socket
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pyroute2 import Conntrack, IPRoute
from pyroute2.conntrack import NFCTAttrTuple
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.nfnetlink.nfctsocket import nfct_msg

from gateway.vpn.nft import enter_namespace
from gateway.vpn.scope import Destination, Network, disjoint_boxes

_PROTOCOLS = {
    socket.IPPROTO_TCP: "tcp",
    socket.IPPROTO_UDP: "udp",
    socket.IPPROTO_ICMP: "icmp",
    socket.IPPROTO_ICMPV6: "icmp",  # the scope's icmp is ICMPv6 for an IPv6 seat
}
"""Protocol numbers as the scope names them."""


@dataclass(frozen=True)
class Pools:
    """The seats' address pools, less the gateway's own addresses in them: a source here that is no seat has no
    tunnel (its peer went, in this life of the gateway or before it), so nothing it opened may go on."""

    networks: tuple[Network, ...]
    gateway: frozenset[ipaddress.IPv4Address | ipaddress.IPv6Address]
    routed: tuple[Network, ...] = ()
    """The prefixes of the gateway's addresses, which may be wider than the pools: a person keeps their address when
    the pool narrows (``ipam.assign``), and a source of these outside the pools is held as one of them while its
    route is the tunnel ``interface`` (a more specific route, a network beside the gateway, is not)."""
    interface: str | None = None

    def hold(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return address not in self.gateway and any(address in network for network in self.networks)

    def hold_routed(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        """Whether ``address``, of none of the pools, is of a prefix routed into the tunnel and routed there (asked
        of the kernel in the calling thread's namespace)."""
        if self.interface is None or address in self.gateway or not any(address in net for net in self.routed):
            return False
        with IPRoute() as routes:
            index = routes.link_lookup(ifname=self.interface)
            try:
                found = routes.route("get", dst=str(address))
            except NetlinkError:  # no route at all
                return False
        return bool(index and found) and found[0].get_attr("RTA_OIF") == index[0]


def cut_disallowed(
    seats: Mapping[str, Sequence[Destination]], netns: str | None = None, pools: Pools | None = None
) -> int:
    """`_cut_disallowed` in ``netns``: on a thread of its own that enters it, as ``nft.Nftables`` does. pyroute2's
    ``netns=`` opens each socket in a forked child, and after a fork of the gateway's large process each page it
    writes next faults once (suspected of the safety-net pass that follows a whole load's cut: 36.5 → 45.6 ms median
    at 10,000 leases, within the noise); without the fork, 20,000 seats on an empty table take 11-14 ms, 15-16 with
    it."""
    if not seats and pools is None:
        return 0
    if netns is None:
        return _cut_disallowed(seats, pools)

    def entered() -> int:
        enter_namespace(netns)  # this thread alone, which ends with the cut
        return _cut_disallowed(seats, pools)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="conntrack") as thread:
        return thread.submit(entered).result()


def _cut_disallowed(seats: Mapping[str, Sequence[Destination]], pools: Pools | None) -> int:
    """Delete the conntrack entries of connections opened from each of ``seats`` that its destinations do not allow,
    and, with ``pools``, every entry opened from an address of them that is no seat; how many were deleted. A seat is
    named by its address as ``str()`` of an ``ipaddress`` address writes it (IPAM's leases do), with or without its
    /32 or /128.

    Reads the namespace's whole connection table once, both address families in one dump (the kernel walks its
    conntrack hash, shared by every namespace, for each dump: ~9 ms here with this namespace's table empty), then
    looks up only the sources found in it: the cost follows what the table holds, not how many seats there are (the
    cut after a whole load names all 20,000 seats of 10,000 peers, where parsing each seat's address first, and a dump
    per family, cost ~80 ms on an empty table)."""
    with Conntrack(nfgen_family=socket.AF_UNSPEC) as table:
        origins = [_origin(message) for message in table.dump()]
    scopes: dict[str, tuple[Destination, ...] | None] = {}  # by source as the dump writes it
    doomed: dict[int, list[NFCTAttrTuple]] = {socket.AF_INET: [], socket.AF_INET6: []}
    for origin in origins:
        if origin.saddr not in scopes:
            scopes[origin.saddr] = _scope_of(seats, pools, origin.saddr)
        destinations = scopes[origin.saddr]
        if destinations is not None and not _allows(destinations, origin):
            doomed[socket.AF_INET6 if ":" in origin.saddr else socket.AF_INET].append(origin)
    cut = 0
    for family, origins in doomed.items():
        if not origins:
            continue
        with Conntrack(nfgen_family=family) as table:  # a tuple is read in its socket's family
            for origin in origins:
                try:
                    table.entry("del", tuple_orig=origin)
                except NetlinkError as error:
                    # Gone since the dump: the connection closed, or another cut (a pass's beside the one after a
                    # whole load) deleted it first.
                    if error.code != errno.ENOENT:
                        raise
                else:
                    cut += 1
    return cut


def _origin(message: nfct_msg) -> NFCTAttrTuple:
    """A dumped entry's original tuple, as its deletion must name it. pyroute2 reads the ports of TCP and UDP alone,
    but the kernel's tuple of every protocol it tracks with ports (GRE's keys, SCTP, DCCP, UDP-Lite) has them, and
    refuses a deletion without them (EINVAL): such an entry from an address of the pools (one forged packet from
    anybody who reaches the gateway makes one) ended every cut that named it."""
    tuple_orig = message.get_attr("CTA_TUPLE_ORIG")
    origin = NFCTAttrTuple.from_netlink(message["nfgen_family"], tuple_orig)
    if origin.proto not in _PROTOCOLS:  # pyroute2 reads TCP's and UDP's ports, and ICMP's id, type and code
        ports = tuple_orig.get_attr("CTA_TUPLE_PROTO")
        origin.sport, origin.dport = ports.get_attr("CTA_PROTO_SRC_PORT"), ports.get_attr("CTA_PROTO_DST_PORT")
    return origin


def _scope_of(
    seats: Mapping[str, Sequence[Destination]], pools: Pools | None, source: str
) -> tuple[Destination, ...] | None:
    """The destinations of the seat a connection's source address is; none for an address of ``pools`` that is no
    seat; None (the connection is left alone) for any other source."""
    address = ipaddress.ip_address(source)
    text = str(address)
    destinations = seats.get(text, seats.get(f"{text}/{address.max_prefixlen}"))
    if destinations is not None:
        return tuple(destinations)
    return () if pools is not None and (pools.hold(address) or pools.hold_routed(address)) else None


def _allows(destinations: tuple[Destination, ...], origin: NFCTAttrTuple) -> bool:
    """Whether a connection's original direction (``daddr``, ``proto``, ``dport``) is in the scope."""
    proto, target, port = _PROTOCOLS.get(origin.proto), ipaddress.ip_address(origin.daddr), origin.dport
    return any(
        box_proto == proto and target in network and (proto == "icmp" or (port is not None and low <= port <= high))
        for box_proto, network, low, high in disjoint_boxes(target.version, destinations)
    )
