"""Cutting a rescoped seat's open connections (real conntrack in a namespace): exactly those its new destinations do
not allow go, of both address families and tcp, udp and icmp; what is still allowed, and every other seat's, stays."""

import ipaddress
import logging
import socket
import sys

import pytest
from pyroute2 import Conntrack

from gateway.vpn.conntrack import Pools, cut_disallowed
from gateway.vpn.reconcile import InstalledTunnel
from gateway.vpn.scope import Destination
from gateway.vpn.settings import VpnSettings
from tests.vpn.netns import NetnsLab

pytestmark = pytest.mark.e2e
SERVER = (
    "import socket, sys, time\n"
    "held = []\n"
    "for family, host in ((socket.AF_INET, '10.9.0.1'), (socket.AF_INET6, 'fd09::1')):\n"
    "    for port in (8081, 8082, 9000):\n"
    "        server = socket.socket(family)\n"
    "        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "        server.bind((host, port))\n"
    "        server.listen()\n"
    "        held.append(server)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)
CLIENTS = (
    "import socket, struct, sys, time\n"
    "held = []\n"
    "for source, target, port, kind in (line.split() for line in sys.argv[1:]):\n"
    "    family = socket.AF_INET6 if ':' in source else socket.AF_INET\n"
    "    if kind == 'icmp':  # one echo request (the kernel sums ICMPv6 itself; IPv4's sum is done here)\n"
    "        v6 = family == socket.AF_INET6\n"
    "        peer = socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)\n"
    "        peer.bind((source, 0))\n"
    "        total = (128 if v6 else 8) * 256 + 7 + 1\n"
    "        total = (total & 0xFFFF) + (total >> 16)\n"
    "        peer.sendto(struct.pack('!BBHHH', 128 if v6 else 8, 0, 0 if v6 else ~total & 0xFFFF, 7, 1), (target, 0))\n"
    "    else:\n"
    "        peer = socket.socket(family, socket.SOCK_STREAM if kind == 'tcp' else socket.SOCK_DGRAM)\n"
    "        peer.bind((source, 0))\n"
    "        peer.connect((target, int(port)))\n"
    "        if kind == 'udp':\n"
    "            peer.send(b'x')\n"
    "    held.append(peer)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)
OPENED = [
    "10.9.0.2 10.9.0.1 8081 tcp",  # allowed: kept
    "10.9.0.2 10.9.0.1 8082 tcp",  # no longer allowed: cut
    "10.9.0.2 10.9.0.1 9000 tcp",  # inside the allowed range 8999-9001: kept
    "10.9.0.2 10.9.0.1 5353 udp",  # udp to that host is not allowed (tcp is): cut
    "fd09::2 fd09::1 8082 tcp",  # the seat's IPv6 address, allowed there: kept
    "fd09::2 fd09::1 8081 tcp",  # not allowed for IPv6: cut
    "10.9.0.3 10.9.0.1 8082 tcp",  # another seat, not rescoped: kept
    "10.9.0.2 10.9.0.1 0 icmp",  # icmp is allowed over IPv6 only: cut
    "fd09::2 fd09::1 0 icmp",  # kept
]


def _tracked(ns: str) -> set[tuple[str, str, int, int]]:
    found = set()
    for family in (socket.AF_INET, socket.AF_INET6):
        with Conntrack(nfgen_family=family, netns=ns) as table:
            found |= {(e.tuple_orig.saddr, e.tuple_orig.daddr, e.tuple_orig.proto, e.tuple_orig.dport or 0)
                      for e in table.dump_entries()}  # fmt: skip
    return found


def test_only_the_connections_the_new_scope_refuses_are_cut() -> None:
    with NetnsLab() as lab:
        home, gw = lab.add("home"), lab.add("gw")
        home_end, gw_end = lab.link(home, "10.9.0.2/24", gw, "10.9.0.1/24")
        lab.run(home, "ip", "addr", "add", "10.9.0.3/24", "dev", home_end)
        lab.run(home, "ip", "addr", "add", "fd09::2/64", "dev", home_end, "nodad")
        lab.run(gw, "ip", "addr", "add", "fd09::1/64", "dev", gw_end, "nodad")
        # a ct expression makes the namespace track connections, as the gateway's table does
        lab.run(gw, "nft", "-f", "-", stdin="table inet t {\n chain input {\n  type filter hook input priority 0;\n"
                "  ct state established accept\n }\n}\n")  # fmt: skip
        server = lab.spawn(gw, sys.executable, "-c", SERVER)
        assert server.stdout is not None and server.stdout.readline().strip() == b"ready"
        clients = lab.spawn(home, sys.executable, "-c", CLIENTS, *OPENED)
        assert clients.stdout is not None and clients.stdout.readline().strip() == b"ready"
        before = _tracked(gw)
        assert len(before) == len(OPENED)
        seat_scope = [
            Destination("10.9.0.1/32", "tcp", 8081),
            Destination("10.9.0.0/24", "tcp", (8999, 9001)),
            Destination("fd09::/64", "tcp", 8082),
            Destination("fd09::/64", "icmp"),
        ]
        cut = cut_disallowed({"10.9.0.2/32": seat_scope, "fd09::2/128": seat_scope}, gw)
        assert cut == 4
        assert before - _tracked(gw) == {
            ("10.9.0.2", "10.9.0.1", 1, 0),
            ("10.9.0.2", "10.9.0.1", 6, 8082),
            ("10.9.0.2", "10.9.0.1", 17, 5353),
            ("fd09::2", "fd09::1", 6, 8081),
        }
        assert cut_disallowed({"10.9.0.2/32": seat_scope, "fd09::2/128": seat_scope}, gw) == 0
        # After a whole load the pools are named: an address of them that is no seat keeps nothing (its tunnel went),
        # unless it is the gateway's own.
        seated = {"10.9.0.2/32": seat_scope, "fd09::2/128": seat_scope}
        pool = (ipaddress.ip_network("10.9.0.0/24"),)
        assert cut_disallowed(seated, gw, Pools(pool, frozenset({ipaddress.ip_address("10.9.0.3")}))) == 0
        assert cut_disallowed(seated, gw, Pools(pool, frozenset())) == 1
        assert ("10.9.0.3", "10.9.0.1", 6, 8082) not in _tracked(gw)


def test_a_cut_that_cannot_enter_its_namespace_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    """The sets already refuse every new connection: a cut that fails must not fail a pass (a namespace gone by that
    name: entering it raises FirewallError, not OSError); the next pass cuts again."""
    seats = {"10.77.0.2": (Destination("172.30.0.0/24", "tcp", 443),)}
    installed = InstalledTunnel(None, VpnSettings(netns="sgw-no-such-namespace"))  # type: ignore[arg-type]  # no pass
    try:
        with caplog.at_level(logging.ERROR, logger="gateway.vpn.reconcile"):
            installed._cut_beside(lambda: seats, "rescoped or gone")
            installed._beside.submit(int).result()  # the cut ran before this
    finally:
        installed.close()
    assert "could not cut the open connections of the rescoped or gone seats; the next pass cuts again" in caplog.text
