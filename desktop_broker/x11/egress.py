"""Each seat's network allow-list: nftables rules on the seat user's uid, in a table of the seats' own.

A seat's processes may open connections only to the backends its app's policy names. Every address of the
node itself is refused first, whatever the policy says (`fib daddr type local`): the gateway's port and its
`/metrics` and `/internal/…`, guacd (no authentication, it opens RDP/VNC connections anywhere) and the other
seats' x11vnc all listen there. Replies to connections others opened to the seat (the gateway's bridge to
its x11vnc) pass as `ct state established`.

The table `inet sohogw_seats` is ours alone: the VPN rebuilds its own table and never touches this one. Every
seat gets a chain named after its user and one element `uid : jump <chain>` in the map the output hook
consults; both go in one `nft -f -` transaction before the seat's first process runs, and go again after
its last one is dead. Several brokers on one node share the table; each changes only its own seats' chains.
"""

import json
import subprocess

from desktop_broker.x11.errors import SeatStartFailed
from policy.values import Destination

TABLE = "inet sohogw_seats"
_MAP = "seat_egress"
_NFT_TIMEOUT_SECONDS = 10.0


def chain_name(user_name: str) -> str:
    """The seat's chain: its user name in the characters nft accepts unquoted."""
    return user_name.replace("-", "_")


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
    """The table, the map and the hook chain; re-declared by every change, so whoever comes first makes them."""
    return [
        f"add table {TABLE}",
        f"add map {TABLE} {_MAP} {{ type uid : verdict ; }}",
        f"add chain {TABLE} output {{ type filter hook output priority 0 ; policy accept ; }}",
        f"flush chain {TABLE} output",
        f"add rule {TABLE} output ct state established,related accept",
        f"add rule {TABLE} output meta skuid vmap @{_MAP}",
    ]


def allow_egress(user_name: str, uid: int, destinations: tuple[Destination, ...]) -> None:
    """Install the seat's allow-list (local addresses refused, the destinations accepted, the rest refused)."""
    chain = chain_name(user_name)
    commands = [
        *_skeleton(),
        f"add chain {TABLE} {chain}",
        f"flush chain {TABLE} {chain}",
        f"add rule {TABLE} {chain} fib daddr type local meta l4proto tcp reject with tcp reset",
        f"add rule {TABLE} {chain} fib daddr type local reject",
        *(f"add rule {TABLE} {chain} {_destination_rule(d)}" for d in destinations),
        f"add rule {TABLE} {chain} meta l4proto tcp reject with tcp reset",
        f"add rule {TABLE} {chain} reject",
        f"add element {TABLE} {_MAP} {{ {uid} : jump {chain} }}",
    ]
    _apply(commands)


def remove_egress(user_name: str, uid: int) -> None:
    """Drop the seat's map element and chain; a seat whose rules are already gone is left as it is."""
    rules = _listing()
    chain = chain_name(user_name)
    commands = [f"delete element {TABLE} {_MAP} {{ {uid} }}"] if uid in _map_elements(rules) else []
    if chain in _chains(rules):
        commands += [f"flush chain {TABLE} {chain}", f"delete chain {TABLE} {chain}"]
    if commands:
        _apply(commands)


def remove_egress_of_instance(instance_id: str) -> list[str]:
    """Drop every chain (and its map elements) of a dead broker instance's seat users; returns the chains."""
    rules = _listing()
    prefix = chain_name(f"sohoseat-{instance_id}-")
    doomed = [chain for chain in _chains(rules) if chain.startswith(prefix)]
    commands = [
        f"delete element {TABLE} {_MAP} {{ {uid} }}" for uid, target in _map_elements(rules).items() if target in doomed
    ]
    for chain in doomed:
        commands += [f"flush chain {TABLE} {chain}", f"delete chain {TABLE} {chain}"]
    if commands:
        _apply(commands)
    return doomed


def _apply(commands: list[str]) -> None:
    """One atomic nft transaction; a failure is a seat that must not start (fail closed)."""
    try:
        result = subprocess.run(
            ["nft", "-f", "-"],
            input="\n".join(commands) + "\n",
            capture_output=True,
            text=True,
            timeout=_NFT_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SeatStartFailed(f"nft could not run to set the seats' network allow-list: {error}") from None
    if result.returncode != 0:
        raise SeatStartFailed(f"nft refused the seats' network allow-list: {result.stderr.strip()[-500:]}")


def _listing() -> list[dict[str, object]]:
    """The table's objects as `nft -j` gives them; empty when the table does not exist (yet)."""
    family, name = TABLE.split()
    result = subprocess.run(
        ["nft", "-j", "list", "table", family, name],
        capture_output=True,
        text=True,
        timeout=_NFT_TIMEOUT_SECONDS,
        check=False,
    )
    if result.returncode != 0:
        return []
    objects: list[dict[str, object]] = json.loads(result.stdout)["nftables"]
    return objects


def _chains(rules: list[dict[str, object]]) -> set[str]:
    return {str(item["chain"]["name"]) for item in rules if isinstance(item.get("chain"), dict)}  # type: ignore[index]


def _map_elements(rules: list[dict[str, object]]) -> dict[int, str]:
    """uid → the chain its element jumps to."""
    for item in rules:
        found = item.get("map")
        if isinstance(found, dict) and found.get("name") == _MAP:
            return {int(uid): verdict["jump"]["target"] for uid, verdict in found.get("elem", [])}
    return {}
