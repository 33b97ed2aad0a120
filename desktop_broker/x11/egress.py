"""Each seat's network allow-list: nftables rules on the seat user's uid, in a table of the seats' own.

A seat's processes may open connections only to the backends its app's policy names. Every address of the
node itself is refused first, whatever the policy says (`fib daddr type local`): the gateway's port and its
`/metrics` and `/internal/…`, guacd (no authentication, it opens RDP/VNC connections anywhere) and the other
seats' x11vnc all listen there. A seat answers only connections opened to it from the node's loopback
(the gateway's bridge to its x11vnc): its replies to anyone else are dropped, so a seat process listening
on 0.0.0.0 is no channel to a host that reaches the node (an agent's home PC over the VPN).

The table `inet sohogw_seats` is ours alone: the VPN rebuilds its own table and never touches this one. Every
seat user's uid gets a chain `seat_<uid>` and one element `uid : jump seat_<uid>` in the map the output hook
consults, written in one `nft -f -` transaction (the chain flushed and filled again, so rules a crashed seat
left for a recycled uid are replaced, never added to). They go again after the seat's last process is dead,
and `remove_stale_egress` drops those of uids that are no seat user any more. Several brokers on one node
share the table; each changes only its own seats' uids. A uid of the seat users' range
(`unix_accounts.SEAT_UIDS`) with no element is refused everything: a seat whose rules are missing is cut off,
never unfiltered.
"""

import json
import re
from collections.abc import Callable

from desktop_broker.x11.errors import SeatStartFailed
from desktop_broker.x11.unix_accounts import SEAT_UIDS, accounts_locked
from netfilter import libnftables
from policy.values import Destination

TABLE = "inet sohogw_seats"
_MAP = "seat_egress"
LIBRARY_WAIT_S = 60.0
"""How long a seat waits for another script in libnftables (the VPN's, another seat's) before it does not start:
the process runs one at a time, and one the kernel never answers must not hang every seat start behind it."""


def chain_name(uid: int) -> str:
    """The chain of the seat user with this uid."""
    return f"seat_{uid}"


def _destination_rule(destination: Destination) -> str:
    family = "ip" if destination.network.version == 4 else "ip6"
    match = f"{family} daddr {destination.network}"
    if destination.protocol is None:
        return f"{match} accept"
    if destination.port is not None:
        return f"{match} {destination.protocol} dport {destination.port} accept"
    protocol = "icmpv6" if destination.protocol == "icmp" and family == "ip6" else destination.protocol
    return f"{match} meta l4proto {protocol} accept"


def _skeleton() -> list[str]:
    """The table, the map and the hook chain; re-declared by every change, so whoever comes first makes them.

    No global `ct state established` accept: a seat's replies are judged in its own chain (see `allow_egress`).
    Fail closed: a uid of the seat users' range without an element (its rules not installed yet, or deleted by
    a broker that judged the uid stale just before a new seat user got it) is refused everything.
    """
    seat_uids = f"{SEAT_UIDS.start}-{SEAT_UIDS.stop - 1}"
    return [
        f"add table {TABLE}",
        f"add map {TABLE} {_MAP} {{ type uid : verdict ; }}",
        f"add chain {TABLE} output {{ type filter hook output priority 0 ; policy accept ; }}",
        f"flush chain {TABLE} output",
        f"add rule {TABLE} output meta skuid vmap @{_MAP}",
        f"add rule {TABLE} output meta skuid {seat_uids} meta l4proto tcp reject with tcp reset",
        f"add rule {TABLE} output meta skuid {seat_uids} reject",
    ]


def allow_egress(uid: int, destinations: tuple[Destination, ...]) -> None:
    """Install the seat's allow-list (local addresses refused, the destinations accepted, the rest refused)."""
    chain = chain_name(uid)
    commands = [
        *_skeleton(),
        f"add chain {TABLE} {chain}",
        f"flush chain {TABLE} {chain}",
        # A seat's sockets answer only connections opened from the node's loopback (the gateway's bridge
        # to its x11vnc): a seat process listening on 0.0.0.0 must not become a channel to a remote host.
        # Packets from elsewhere with a loopback source are martians the kernel drops on arrival.
        f"add rule {TABLE} {chain} ct direction reply ct original ip saddr 127.0.0.0/8 accept",
        f"add rule {TABLE} {chain} ct direction reply ct original ip6 saddr ::1 accept",
        f"add rule {TABLE} {chain} ct direction reply drop",
        f"add rule {TABLE} {chain} fib daddr type local meta l4proto tcp reject with tcp reset",
        f"add rule {TABLE} {chain} fib daddr type local reject",
        *(f"add rule {TABLE} {chain} {_destination_rule(d)}" for d in destinations),
        f"add rule {TABLE} {chain} meta l4proto tcp reject with tcp reset",
        f"add rule {TABLE} {chain} reject",
        f"add element {TABLE} {_MAP} {{ {uid} : jump {chain} }}",
    ]
    _apply(commands)


def remove_egress(uid: int) -> None:
    """Drop the seat's map element and chain; a seat whose rules are already gone is left as it is."""
    _remove(_listing(), [uid])


def remove_stale_egress(is_seat_user: Callable[[int], bool]) -> list[int]:
    """Drop the rules of every uid that is no seat user any more (a seat of a broker that died); returns them.

    Read, check and delete happen under the accounts lock that every broker's `useradd` takes: otherwise a
    uid judged stale could go to a new seat user, and its fresh rules be deleted, between check and delete.
    """
    with accounts_locked():
        rules = _listing()
        uids = {*_map_elements(rules), *(int(c[5:]) for c in _chains(rules) if re.fullmatch(r"seat_\d+", c))}
        stale = sorted(uid for uid in uids if not is_seat_user(uid))
        _remove(rules, stale)
    return stale


def _remove(rules: list[dict[str, object]], uids: list[int]) -> None:
    elements, chains = _map_elements(rules), _chains(rules)
    commands = []
    for uid in uids:
        if uid in elements:
            commands.append(f"delete element {TABLE} {_MAP} {{ {uid} }}")
        if chain_name(uid) in chains:
            commands += [f"flush chain {TABLE} {chain_name(uid)}", f"delete chain {TABLE} {chain_name(uid)}"]
    if commands:
        _apply(commands)


def _apply(commands: list[str]) -> None:
    """One atomic nft transaction; a failure is a seat that must not start (fail closed)."""
    outcome = _nft("\n".join(commands) + "\n")
    if not outcome.ok:
        raise SeatStartFailed(f"nft refused the seats' network allow-list: {outcome.error.strip()[-500:]}")


def _listing() -> list[dict[str, object]]:
    """The table's objects as `nft -j` gives them; empty when the table does not exist (yet)."""
    outcome = _nft(f"list table {TABLE}", json_output=True)
    if not outcome.ok:
        return []
    objects: list[dict[str, object]] = json.loads(outcome.output)["nftables"]
    return objects


def _nft(commands: str, json_output: bool = False) -> libnftables.Outcome:
    """One script in a context of its own (a seat starts seldom; ~4 ms in the library against ~20 ms for the `nft`
    program on a loaded node, and the transaction runs while Xvfb starts)."""
    try:
        with libnftables.held(LIBRARY_WAIT_S), libnftables.Context(json_output) as context:
            return context.run(commands)
    except libnftables.NftablesError as error:
        raise SeatStartFailed(f"could not run nft for the seats' network allow-list: {error}") from None


def _chains(rules: list[dict[str, object]]) -> set[str]:
    return {str(item["chain"]["name"]) for item in rules if isinstance(item.get("chain"), dict)}  # type: ignore[index]


def _map_elements(rules: list[dict[str, object]]) -> dict[int, str]:
    """uid → the chain its element jumps to."""
    for item in rules:
        found = item.get("map")
        if isinstance(found, dict) and found.get("name") == _MAP:
            return {int(uid): verdict["jump"]["target"] for uid, verdict in found.get("elem", [])}
    return {}
