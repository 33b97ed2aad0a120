"""The tunnel scope as one nftables table, `inet sohogw`, replaced atomically and never touching others.

Layout (see docs/vpn.md): sets of seat addresses, and concatenated interval sets
`seat . destination . protocol . port` per address family, so the allowed check for 10,000 seats is one set
lookup; a `from_tunnel` chain (jumped to from the forward and input hooks for packets arriving from the
tunnel) that accepts established/related, drops seat-to-seat and everything not in the sets; and a
`to_tunnel` chain that lets only replies into the tunnel. `apply` sends "table; delete table; table {...}" in
one `nft -f -` run: a single kernel transaction, so no packet ever sees half a rule set. Seats' elements added to
and deleted from the loaded table go over netlink instead, also in one transaction (``nft_elements.py``).
"""

import functools
import subprocess
from collections.abc import Iterable, Sequence

from gateway.vpn.interface import netns_prefix
from gateway.vpn.scope import Destination, TunnelScope, disjoint_boxes, seat_address

TABLE = "inet sohogw"


class FirewallError(RuntimeError):
    """nft refused the rule set or could not be run; the message carries nft's own words."""


SET_NAMES = ("seats4", "seats6", "allow4", "allow6", "icmp4", "icmp6")


def seat_elements(seat: str, destinations: Sequence[Destination]) -> dict[str, list[str]]:
    """The elements one seat puts in our sets, by set name: its address, and a box per allowed destination.

    Every element starts with the seat's own address, so two seats never share one: removing a seat deletes
    exactly its elements and nobody else's."""
    version, address = _seat(seat)
    elements = {f"seats{version}": [address]}
    for name, tails in _element_tails(version, tuple(destinations)).items():
        elements[name] = [address + tail for tail in tails]
    return elements


@functools.lru_cache(maxsize=1 << 17)
def _seat(seat: str) -> tuple[int, str]:
    # Cached: every load names the same 20,000 seats; their parsing and printing was most of a load's second.
    address = seat_address(seat)
    return address.version, str(address)


@functools.lru_cache(maxsize=4096)
def _element_tails(version: int, destinations: tuple[Destination, ...]) -> dict[str, list[str]]:
    # What follows the seat's address in each of its elements, by set name: the same for every seat of one family
    # with one destination list, so a scope of 10,000 seats cuts its few destination lists once.
    tails: dict[str, list[str]] = {}
    for proto, network, low, high in disjoint_boxes(version, destinations):
        if proto == "icmp":
            tails.setdefault(f"icmp{version}", []).append(f" . {network}")
        else:
            port = str(low) if low == high else f"{low}-{high}"
            tails.setdefault(f"allow{version}", []).append(f" . {network} . {proto} . {port}")
    return tails


def render(scope: TunnelScope) -> str:
    """The complete nft script for `scope` (validated first: a bad scope raises ScopeError, no rules)."""
    scope.validate()
    sets: dict[str, list[str]] = {name: [] for name in SET_NAMES}
    for seat, destinations in scope.seats.items():
        for name, elements in seat_elements(seat, destinations).items():
            sets[name] += elements
    iface = f'"{scope.interface}"'
    return "\n".join(
        [
            f"table {TABLE}",
            f"delete table {TABLE}",
            f"table {TABLE} {{",
            _set("seats4", "ipv4_addr", sets["seats4"], interval=False),
            _set("seats6", "ipv6_addr", sets["seats6"], interval=False),
            _set("allow4", "ipv4_addr . ipv4_addr . inet_proto . inet_service", sets["allow4"]),
            _set("allow6", "ipv6_addr . ipv6_addr . inet_proto . inet_service", sets["allow6"]),
            _set("icmp4", "ipv4_addr . ipv4_addr", sets["icmp4"]),
            _set("icmp6", "ipv6_addr . ipv6_addr", sets["icmp6"]),
            "  chain forward {",
            "    type filter hook forward priority filter; policy accept;",
            f"    iifname {iface} jump from_tunnel",
            f"    oifname {iface} jump to_tunnel",
            "  }",
            "  chain input {",
            "    type filter hook input priority filter; policy accept;",
            f"    iifname {iface} jump from_tunnel",
            "  }",
            "  chain from_tunnel {",
            "    ct state established,related accept",
            "    ct state invalid drop",
            "    ip daddr @seats4 counter drop",
            "    ip6 daddr @seats6 counter drop",
            "    meta l4proto { tcp, udp } ip saddr . ip daddr . meta l4proto . th dport @allow4 accept",
            "    meta l4proto { tcp, udp } ip6 saddr . ip6 daddr . meta l4proto . th dport @allow6 accept",
            "    meta l4proto icmp ip saddr . ip daddr @icmp4 accept",
            "    meta l4proto ipv6-icmp ip6 saddr . ip6 daddr @icmp6 accept",
            "    counter drop",
            "  }",
            "  chain to_tunnel {",
            "    ct state established,related accept",
            "    counter drop",
            "  }",
            "}",
            "",
        ]
    )


def _set(name: str, kind: str, elements: Iterable[str], interval: bool = True) -> str:
    flags = " flags interval;" if interval else ""
    unique = sorted(set(elements))
    body = f" elements = {{ {', '.join(unique)} }};" if unique else ""
    return f"  set {name} {{ type {kind};{flags}{body} }}"


def apply(scope: TunnelScope, netns: str | None = None) -> None:
    """Replace our table with the rules for `scope` in one transaction; other tables are left as they are."""
    _nft(["-f", "-"], render(scope), netns)


def remove(netns: str | None = None) -> None:
    """Delete our table if present (the tunnel is then unfiltered: only for shutdown and tests)."""
    _nft(["-f", "-"], f"table {TABLE}\ndelete table {TABLE}\n", netns)


def loaded(netns: str | None = None) -> bool:
    """Whether our table is present, for people and tests (not cheap: nft fetches every set's elements to list the
    tables, ~0.2 s at 10,000 seats; the reconciler reads the ruleset generation instead, ``nft_generation.py``)."""
    return f"table {TABLE}" in _nft(["list", "tables"], None, netns).splitlines()


def listing(netns: str | None = None) -> str:
    """`nft list table inet sohogw`, for people and tests to inspect what is loaded."""
    return _nft(["list", "table", *TABLE.split()], None, netns)


def _nft(args: list[str], script: str | None, netns: str | None) -> str:
    try:
        done = subprocess.run(
            [*netns_prefix(netns), "nft", *args], input=script, capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FirewallError(f"could not run nft: {exc}") from exc
    if done.returncode != 0:
        raise FirewallError(f"nft {' '.join(args)} failed: {done.stderr.strip()[:2000]}")
    return done.stdout
