"""The tunnel scope as one nftables table, `inet sohogw`, replaced atomically and never touching others.

Layout (see docs/vpn.md): a verdict map per address family from each seat's address to a jump to its scope's chain,
one chain per distinct scope (seats share the few scopes of their policy groups), so a seat costs the kernel one
hash element; a `from_tunnel` chain (jumped to from the forward and input hooks for packets arriving from the
tunnel) that accepts established/related, drops what goes back into the tunnel (seat to seat, whether or not the
other seat has its element yet), jumps to the sender's scope chain, and drops whatever that chain did not accept;
and a `to_tunnel` chain that lets only replies into the tunnel (the output hook drops what the gateway itself would
open there, and what a process of this host sends from a source of the pools but its own), and a prerouting hook
that drops a source of the pools, or routed into the tunnel, not arriving on the tunnel (forged).
`Nftables.load` sends "table; delete table; table {...}" as one script: a single kernel transaction, so
no packet ever sees half a rule set. Scripts run in this process through libnftables, the library the `nft` command
is made of (``Nftables``). Seats' elements added to and deleted from the loaded table go over netlink instead, also
in one transaction (``nft_elements.py``).
"""

import ctypes
import functools
import hashlib
import ipaddress
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from types import TracebackType

from gateway.vpn.scope import Destination, Network, TunnelScope, disjoint_boxes, seat_address
from netfilter import libnftables

TABLE = "inet sohogw"
TIMEOUT_S = 60.0
"""How long a script may take by default, waiting for the scripts before it included."""
NETNS_DIR = "/var/run/netns"
"""Where ``ip netns`` keeps its named namespaces."""
_CLONE_NEWNET = 0x40000000


class FirewallError(RuntimeError):
    """nft refused the rule set or could not be run; the message carries nft's own words."""


MAP_NAMES = ("seats4", "seats6")


@dataclass(frozen=True)
class ScopeChain:
    """The chain one scope's seats jump to: its rules accept what the scope allows of one address family.

    Named by a digest of its rules, so the same scope gets the same chain in a whole load and in a change of a few
    seats, and two scopes never share one."""

    name: str
    rules: tuple[str, ...] = field(compare=False)

    def creation(self) -> str:
        """The nft script that creates this chain in our table (refused when a chain of that name is there)."""
        return f"create chain {TABLE} {self.name}\n" + "".join(
            f"add rule {TABLE} {self.name} {rule}\n" for rule in self.rules
        )

    def block(self) -> str:
        """The chain inside a table's block, as ``render`` writes it."""
        return "\n".join([f"  chain {self.name} {{", *(f"    {rule}" for rule in self.rules), "  }"])


@functools.lru_cache(maxsize=4096)
def scope_chain(version: int, destinations: tuple[Destination, ...]) -> ScopeChain | None:
    """The chain of the seats of IP ``version`` with these destinations; None when none is of that family (those
    seats' packets then go on to the drop at the end of ``from_tunnel``). Cached: seats share a few lists."""
    ip, icmp = ("ip", "icmp") if version == 4 else ("ip6", "ipv6-icmp")
    ported: list[str] = []
    networks: list[str] = []
    for proto, network, low, high in disjoint_boxes(version, destinations):
        if proto == "icmp":
            networks.append(str(network))
        else:
            ported.append(f"{network} . {proto} . {low if low == high else f'{low}-{high}'}")
    rules = []
    if ported:
        boxes = ", ".join(ported)
        rules.append(f"meta l4proto {{ tcp, udp }} {ip} daddr . meta l4proto . th dport {{ {boxes} }} accept")
    if networks:
        rules.append(f"meta l4proto {icmp} {ip} daddr {{ {', '.join(networks)} }} accept")
    if not rules:
        return None
    digest = hashlib.sha256("\n".join(rules).encode()).hexdigest()[:32]
    return ScopeChain(f"scope{version}_{digest}", tuple(rules))


def chains_of(seats: Mapping[str, Sequence[Destination]]) -> Counter[ScopeChain]:
    """How many of ``seats`` jump to each scope chain (seats share a few destination lists: each list's chain is
    looked up once per family, by the list's identity, as ``nft_elements.elements_by_set`` does)."""
    by_list: dict[tuple[int, int], tuple[int, Sequence[Destination]]] = {}
    for seat, destinations in seats.items():
        key = (seat_address(seat).version, id(destinations))
        seen, _ = by_list.get(key, (0, destinations))
        by_list[key] = (seen + 1, destinations)
    chains: Counter[ScopeChain] = Counter()
    for (version, _), (seats_of_list, destinations) in by_list.items():
        chain = scope_chain(version, tuple(destinations))
        if chain is not None:
            chains[chain] += seats_of_list
    return chains


@functools.lru_cache(maxsize=1 << 17)
def _seat(seat: str) -> tuple[int, str]:
    # Cached: every load names the same 20,000 seats; their parsing and printing was most of a load's second.
    address = seat_address(seat)
    return address.version, str(address)


def render(scope: TunnelScope) -> str:
    """The complete nft script for `scope` (validated first: a bad scope raises ScopeError, no rules)."""
    scope.validate()
    maps: dict[str, list[str]] = {name: [] for name in MAP_NAMES}
    # Each seat's element is its address and a jump to its scope's chain: the address alone is the key, so two seats
    # never share one. Each destination list's chain is found once per family, by the list's identity.
    chains: dict[tuple[int, int], ScopeChain | None] = {}
    for seat, destinations in scope.seats.items():
        version, address = _seat(seat)
        key = (version, id(destinations))
        if key not in chains:
            chains[key] = scope_chain(version, tuple(destinations))
        maps[f"seats{version}"].append(f"{address} : {_verdict(chains[key])}")
    iface = f'"{scope.interface}"'
    # Not from the tunnel, a source the tunnel carries is forged (the gateway's own addresses come back over lo):
    # the forward hook would let it through, and the server's answer would go into the tunnel as a reply.
    tunnel_sources = [
        (ip, ", ".join(map(str, networks)), ", ".join(sorted(str(own) for own in scope.own if own.version == version)))
        for version, ip in ((4, "ip"), (6, "ip6"))
        if (networks := _merged(scope.pools, version))
    ]
    forged = [
        f'    iifname != {{ {iface}, "lo" }} {ip} saddr {{ {networks} }} counter drop'
        for ip, networks, _ in tunnel_sources
    ]
    # Nor a source of no pool whose route is the tunnel (a person keeps their address when the pool narrows, its peer
    # and route with it; a more specific route, a network beside the gateway, is not the tunnel's).
    forged.append(f'    iifname != {{ {iface}, "lo" }} fib saddr oifname {iface} counter drop')
    # Nor may a process of this host send from them but from its own addresses (a raw socket, CAP_NET_RAW, can):
    # sent over lo to a socket of its own, such a packet made conntrack take that socket's answers into the tunnel
    # for replies.
    forged_here = [
        f"    {ip} saddr {{ {networks} }}{f' {ip} saddr != {{ {own} }}' if own else ''} counter drop"
        for ip, networks, own in tunnel_sources
    ]
    used = sorted({chain for chain in chains.values() if chain is not None}, key=lambda chain: chain.name)
    return "\n".join(
        [
            f"table {TABLE}",
            f"delete table {TABLE}",
            f"table {TABLE} {{",
            _map("seats4", "ipv4_addr", maps["seats4"]),
            _map("seats6", "ipv6_addr", maps["seats6"]),
            "  chain prerouting {",
            "    type filter hook prerouting priority raw; policy accept;",
            *forged,
            "  }",
            "  chain forward {",
            "    type filter hook forward priority filter; policy accept;",
            f"    iifname {iface} jump from_tunnel",
            f"    oifname {iface} jump to_tunnel",
            "  }",
            "  chain input {",
            "    type filter hook input priority filter; policy accept;",
            f"    iifname {iface} jump from_tunnel",
            "  }",
            "  chain output {",
            "    type filter hook output priority filter; policy accept;",
            f"    oifname {iface} ct state new drop",
            *forged_here,
            "  }",
            "  chain from_tunnel {",
            "    ct state established,related accept",
            "    ct state invalid drop",
            f"    oifname {iface} counter drop",
            "    ip saddr vmap @seats4",
            "    ip6 saddr vmap @seats6",
            "    counter drop",
            "  }",
            "  chain to_tunnel {",
            "    ct state established,related accept",
            "    counter drop",
            "  }",
            *(chain.block() for chain in used),
            "}",
            "",
        ]
    )


def _merged(networks: tuple[Network, ...], version: int) -> list[Network]:
    """The ``networks`` of IP ``version``, those inside another merged into it (nft refuses overlaps in a set)."""
    if version == 4:
        return list(ipaddress.collapse_addresses(net for net in networks if isinstance(net, ipaddress.IPv4Network)))
    return list(ipaddress.collapse_addresses(net for net in networks if isinstance(net, ipaddress.IPv6Network)))


def _verdict(chain: ScopeChain | None) -> str:
    """A seat's verdict in its map: a jump to its scope's chain, or on to the drop when its scope has nothing of the
    seat's family."""
    return "continue" if chain is None else f"jump {chain.name}"


def _map(name: str, kind: str, elements: list[str]) -> str:
    body = f" elements = {{ {', '.join(sorted(set(elements)))} }};" if elements else ""
    return f"  map {name} {{ type {kind} : verdict;{body} }}"


class Nftables:
    """Runs nft scripts in this process, in one network namespace, through libnftables (one at a time).

    The ``nft`` program cost 20-25 ms a load of the empty table, nearly none of it nft's work (the load itself takes
    ~0.5 ms): ``ip netns exec`` and ``nft`` started, and the exiting nft's netlink socket, whose close waits for the
    kernel to free what the transaction deleted (an RCU grace period, 7-19 ms here). So the library's context, and the
    socket it opens, are made once and kept until ``close``. They live on a thread of their own that entered the
    namespace first (a thread's network namespace is its own; the socket stays in the one it was opened in). Before
    each script that thread checks it is still in the namespace the name stands for: one deleted and made again under
    the same name (``ip netns del``, ``add``) is a new namespace, and the kept context would load a dead one; it then
    enters the new one and makes a new context, as ``ip netns exec`` followed the name for each run of the program.

    Each script is bounded by ``timeout`` seconds: a script still running then raises FirewallError, as the program
    killed after that long did. A library call cannot be killed, so the context is then given up (``wedged``): its
    later scripts fail at once rather than queue behind the one that did not return and all run late, and ``close``
    does not wait for it; make a new ``Nftables`` to go on."""

    def __init__(self, netns: str | None = None, timeout: float = TIMEOUT_S) -> None:
        self.netns, self.timeout = netns, timeout
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nft")
        self._context: libnftables.Context | None = None
        """Made and used on ``_thread`` alone."""
        self.wedged = False
        """A script did not return within ``timeout``: this context runs nothing more."""

    def __enter__(self) -> "Nftables":
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def load(self, scope: TunnelScope) -> None:
        """Replace our table with the rules for ``scope`` in one transaction; other tables are left as they are."""
        self.run(render(scope))

    def run(self, script: str) -> str:
        """Run one script (what ``nft -f`` reads); its output. FirewallError with nft's own words when it fails."""
        if self.wedged:
            raise FirewallError(f"could not run nft: an earlier script did not return within {self.timeout:g} s")
        running = self._thread.submit(self._run, script)
        try:
            return running.result(self.timeout)
        except FutureTimeout:
            self.wedged = True  # set first: a script whose caller gave up is never started (``_run``)
            self._thread.shutdown(wait=False, cancel_futures=True)
            raise FirewallError(f"could not run nft: no answer within {self.timeout:g} s") from None

    def close(self) -> None:
        """Free the context (its socket's close may wait for the kernel, see above) and end the thread; a wedged
        context is freed by its thread when its script returns, if ever, and not waited for."""
        if not self.wedged:
            try:
                self._thread.submit(self._free).result(self.timeout)
            except FutureTimeout:
                self.wedged = True  # a script still running: ``_run`` frees the context when it returns
        self._thread.shutdown(wait=False, cancel_futures=True)

    def _run(self, script: str) -> str:
        try:
            with libnftables.ONE_AT_A_TIME:
                if self.wedged:  # waited here behind another context's script until its caller gave up: too late
                    self._free()  # and nobody else will: ``close`` leaves a wedged context to this thread
                    raise FirewallError(f"could not run nft: no answer within {self.timeout:g} s")
                if self._context is not None and self.netns is not None and not _still_in(self.netns):
                    self._free()
                if self._context is None:
                    self._context = self._new_context()
                outcome = self._context.run(script)
                if self.wedged:  # nobody waits for this answer any more, and nobody will free the context
                    self._free()
        except libnftables.NftablesError as error:
            raise FirewallError(f"could not run nft: {error}") from error
        if not outcome.ok:
            raise FirewallError(f"nft failed: {outcome.error.strip()[:2000]}")
        return outcome.output

    def _new_context(self) -> libnftables.Context:
        if self.netns is not None:
            enter_namespace(self.netns)  # this thread stays there: the next context is made in the same namespace
        return libnftables.Context()

    def _free(self) -> None:
        if self._context is not None:
            self._context.close()
            self._context = None


def library_missing() -> str | None:
    """Why libnftables cannot be used here, in words for the operator; None when it can."""
    reason = libnftables.missing()
    return None if reason is None else f"could not run nft: {reason}"


def namespace_inode(netns: str) -> int:
    """The inode of the network namespace named ``netns`` now: a namespace made again under the same name has
    another. OSError when there is none by that name."""
    return os.stat(os.path.join(NETNS_DIR, netns)).st_ino


def _still_in(netns: str) -> bool:
    """Whether the calling thread is in the namespace named ``netns`` now."""
    try:
        return os.stat("/proc/thread-self/ns/net").st_ino == namespace_inode(netns)
    except OSError as error:
        raise FirewallError(f"could not run nft in network namespace {netns!r}: {error}") from error


def enter_namespace(netns: str) -> None:
    """Move the calling thread (only it) into the named network namespace."""
    try:
        descriptor = os.open(os.path.join(NETNS_DIR, netns), os.O_RDONLY)
    except OSError as error:
        raise FirewallError(f"could not run nft in network namespace {netns!r}: {error}") from error
    try:
        if _libc().setns(descriptor, _CLONE_NEWNET) != 0:
            code = ctypes.get_errno()
            raise FirewallError(f"could not run nft in network namespace {netns!r}: {os.strerror(code)}")
    finally:
        os.close(descriptor)


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def apply(scope: TunnelScope, netns: str | None = None) -> None:
    """Replace our table with the rules for `scope` (a context of its own: for tests and people; the reconciler
    keeps one, ``InstalledTunnel``)."""
    with Nftables(netns) as nft:
        nft.load(scope)


def remove(netns: str | None = None) -> None:
    """Delete our table if present (the tunnel is then unfiltered: only for shutdown and tests)."""
    with Nftables(netns) as nft:
        nft.run(f"table {TABLE}\ndelete table {TABLE}\n")


def loaded(netns: str | None = None) -> bool:
    """Whether our table is present, for people and tests (not cheap: nft fetches every set's elements to list the
    tables, ~0.2 s at 10,000 seats; the reconciler reads the ruleset generation instead, ``nft_generation.py``)."""
    with Nftables(netns) as nft:
        return f"table {TABLE}" in nft.run("list tables").splitlines()


def listing(netns: str | None = None) -> str:
    """`nft list table inet sohogw`, for people and tests to inspect what is loaded."""
    with Nftables(netns) as nft:
        return nft.run(f"list table {TABLE}")
