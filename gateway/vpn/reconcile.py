"""Make the WireGuard interface and the nftables scope match the live sessions' leases: whole, or a few sessions.

Desired peers are read from the database (a lease that is desired AND whose session is active, in time and still
bound to the same key) in the worker's transaction; the world is touched only afterwards, outside it
(``gateway/vpn/workers.py``). A full read is made again only when the node's desired-state version moved (a
database trigger bumps it with every write such a read depends on, ``desired_version``) or a session's time ran out.
Two ways to apply:

- ``apply_all`` (the safety-net pass, and the first pass of a life) compares the desired peers with the live ones and
  changes only what differs: matching peers keep their handshake and counters, and the scope's maps get only the
  elements of seats that changed. The table is loaded whole only when it is missing or nothing is known of it yet.
- ``apply_sessions`` (a nudge: a session started or ended) changes the peers and map elements of those sessions
  alone, without reading the interface: one UAPI request and one nftables transaction (two when a scope is new to
  the table), whatever the number of other peers.

Either way, unauthorised peers are removed first (a revocation never waits for the rules), and new peers are added
last (no peer carries a packet before its scope is in force).
"""

import functools
import json
import logging
import threading
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence, Set
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter

import sqlalchemy as sa
from sqlalchemy import or_
from sqlmodel import Session, col

from gateway.clock import as_utc
from gateway.sessions.models import HomeSession, SessionState
from gateway.vpn import conntrack, nft
from gateway.vpn.backend import PeerChanges, PeerSpec, WireGuardBackend, interned, plan_changes
from gateway.vpn.models import DesiredStateVersion, LeaseState, TunnelLease
from gateway.vpn.nft_elements import SetElements
from gateway.vpn.nft_generation import RulesetGeneration
from gateway.vpn.scope import Destination, TunnelScope
from gateway.vpn.settings import VpnSettings

log = logging.getLogger(__name__)
Seats = Mapping[str, Sequence[Destination]]


@dataclass(frozen=True)
class DesiredPeer:
    """One peer that should exist now, with the seat addresses and what they may reach."""

    session_id: str
    public_key: str
    ipv4: str
    ipv6: str
    destinations: tuple[Destination, ...]

    def spec(self) -> PeerSpec:
        return _spec(self.public_key, self.ipv4, self.ipv6)


@dataclass(frozen=True)
class Clash:
    """Live leases that claim one WireGuard key, or one address: none of them gets a peer (``_peers_of``)."""

    claimed: str
    """``key`` or ``address``."""
    value: str
    sessions: tuple[str, ...]

    def as_status(self) -> dict[str, object]:
        return {"claimed": self.claimed, "value": self.value, "sessions": list(self.sessions)}


@dataclass(frozen=True)
class PeerPlan:
    """What a pass makes true. ``sessions`` None: every peer was read (a full pass). Otherwise only the peers of
    those sessions were, and ``keys`` are every key their leases ever named (the peers a narrowed pass may touch)."""

    peers: Mapping[str, DesiredPeer]
    sessions: frozenset[str] | None = None
    keys: frozenset[str] = frozenset()
    retiring: frozenset[str] = frozenset()
    """Sessions no longer active whose lease is still desired: retired once this pass has removed their peers."""
    version: int | None = None
    """The node's desired-state version read before the rows (``desired_version``); None for a narrowed read."""
    until: datetime | None = None
    """When the first of these peers' sessions runs out of time (or its certificate does): from then on the plan is
    out of date though nothing was written. None: no peer has a limit, or a narrowed read."""
    clashes: tuple[Clash, ...] = ()
    """The leases refused a peer for a key or an address they share with another live lease."""

    def still_current(self, version: int, now: datetime) -> bool:
        """Whether a full read made at ``version`` still says what the database wants at ``now``."""
        return self.sessions is None and self.version == version and (self.until is None or now < self.until)


@dataclass(frozen=True)
class ReconcileResult:
    peers: Set[str]
    """The public keys that were desired (and are now installed): a view of the pass's peers, not a copy of 10,000
    keys per pass."""
    changes: PeerChanges
    scope_loaded: bool
    """Whether the nft table was loaded whole in this pass (a first pass, or the table had gone)."""


@functools.lru_cache(maxsize=1 << 17)
def _spec(public_key: str, ipv4: str, ipv6: str) -> PeerSpec:
    # Cached: every pass builds the same 10,000 specs.
    return interned(PeerSpec.of(public_key, [f"{ipv4}/32", f"{ipv6}/128"]))


@functools.lru_cache(maxsize=4096)
def _destinations(scope_json: str) -> tuple[Destination, ...]:
    # Cached: thousands of leases share the few scopes of their groups.
    return tuple(Destination(cidr, proto, port) for cidr, proto, port in json.loads(scope_json))


DesiredRow = tuple[str, str, str, str, str, datetime | str | None, bool | int]
"""A row of ``desired_peers`` as the driver gives it: session id, key, addresses, scope, when the lease's session runs
out if the lease is live (None: not live), and whether its session is over (SQLite's 1 or 0)."""
_LIVE_UNTIL = itemgetter(5)


def desired_peers(
    db: Session, now: datetime, sessions: Collection[str] | None = None, node: str | None = None
) -> PeerPlan:
    """Peers the sessions' state authorises right now: all of them, or those whose key a lease of ``sessions``
    names; on ``node`` when one is named (its own leases, and the unowned ones written before nodes were named).
    A key claimed by two live leases gets no peer (fail closed: cryptokey routing cannot tell the two apart); a
    narrowed read sees every lease of the keys it covers, so it fails closed the same way.

    Read as the driver's own rows (no ORM objects, not even SQLAlchemy's) of the columns a peer needs: a safety-net
    pass reads 10,000 of them. The same read finds the leases still desired whose session is over
    (``PeerPlan.retiring``), so a pass with nothing to retire asks nothing more of the database, and when each live
    session runs out of time (``PeerPlan.until``), which a second query over the same join took 5-6 ms to say at
    10,000 leases."""
    desired_lease = col(TunnelLease.state) == LeaseState.DESIRED
    expires_at, cert_not_after = col(HomeSession.expires_at), col(HomeSession.cert_not_after)
    live = sa.and_(
        desired_lease,
        col(HomeSession.state) == SessionState.ACTIVE,
        expires_at > now,
        or_(cert_not_after.is_(None), cert_not_after > now),
        col(HomeSession.wireguard_key) == col(TunnelLease.public_key),
    )
    # A live lease's session runs out at its end or at its certificate's, whichever comes first (a NULL certificate
    # end compares as unknown: the session's end); a lease that is not live has no end here.
    live_until = sa.case((live, sa.case((cert_not_after < expires_at, cert_not_after), else_=expires_at)))
    query = sa.select(
        col(TunnelLease.session_id),
        col(TunnelLease.public_key),
        col(TunnelLease.ipv4),
        col(TunnelLease.ipv6),
        col(TunnelLease.scope),
        live_until,
        sa.case((sa.and_(desired_lease, col(HomeSession.state) != SessionState.ACTIVE), True), else_=False),
    ).join(HomeSession, col(HomeSession.id) == col(TunnelLease.session_id))
    db.flush()  # the leases this pass wrote (a plain connection does not flush the session for us)
    connection = db.connection()
    keys: frozenset[str] = frozenset()
    if sessions is None:
        query = query.where(desired_lease)
    else:
        # By key alone: with the state in the WHERE clause too, SQLite walks the state index's 10,000 desired leases
        # to find the few of these keys (the lease's state is then checked in the two columns above).
        named = sa.select(col(TunnelLease.public_key)).where(col(TunnelLease.session_id).in_(list(sessions)))
        keys = frozenset(connection.execute(named).scalars())
        query = query.where(col(TunnelLease.public_key).in_(list(keys)))
    if node is not None:
        query = query.where(or_(col(TunnelLease.node) == node, col(TunnelLease.node).is_(None)))
    # The DBAPI cursor's own tuples: SQLAlchemy's rows and a tuple of each cost ~3 ms at 10,000 leases. None of these
    # columns has a result processor but the end of time, converted once below.
    with connection.execute(query) as result:
        rows: tuple[DesiredRow, ...] = tuple(result.cursor.fetchall())
    peers, retiring, clashes = _peers_of(rows)
    if sessions is not None:
        return PeerPlan(peers, frozenset(sessions), keys, retiring, clashes=clashes)
    # The earliest as the database compares them: SQLite's are text in SQLAlchemy's one fixed-width format (its WHERE
    # clauses compare them as text too), PostgreSQL's timestamps.
    first_end = min(filter(None, map(_LIVE_UNTIL, rows)), default=None)
    dialect = connection.dialect
    to_datetime = live_until.type.dialect_impl(dialect).result_processor(dialect, None)
    if first_end is not None and to_datetime is not None:
        first_end = to_datetime(first_end)
    until = None if first_end is None else as_utc(first_end)
    return PeerPlan(peers, None, keys, retiring, until=until, clashes=clashes)


def desired_version(db: Session, node: str | None = None) -> int:
    """The desired-state version that ``desired_peers(db, now, None, node)`` depends on: the sum of the node's row
    and the row of leases of no node (every row when ``node`` is None). Each only ever grows, so the sum changes
    whenever a write changed what such a read returns (``DesiredStateVersion``). Read it first: a write committed
    between it and the rows then only makes the next pass read again."""
    query = sa.select(sa.func.coalesce(sa.func.sum(DesiredStateVersion.version), 0))
    if node is not None:
        query = query.where(col(DesiredStateVersion.node).in_([node, ""]))
    return int(db.connection().execute(query).scalar_one())


@functools.lru_cache(maxsize=2)
def _peers_of(
    rows: tuple[DesiredRow, ...],
) -> tuple[dict[str, DesiredPeer], frozenset[str], tuple[Clash, ...]]:
    """The peers, the sessions to retire and the clashes in the rows of ``desired_peers``. Cached while the rows stay
    the same: a safety-net pass then gets the very dict of the previous one, which ``InstalledTunnel`` compares by
    identity. The result is shared: nobody may change it.

    Fail closed: the live leases that share a key, or an address (IPAM gives each person their own, so two people
    holding one is a fault; WireGuard would quietly move the address to the peer set last, and one agent's traffic
    would go down another's tunnel), get no peer. Two sets, compared by their sizes with the rows', tell whether
    any clash is there (this function took 3.1 → 3.3 ms at 10,000 rows, where it counted the keys alone); only
    rows with a clash are counted, to name it."""
    wanted = [row[:5] for row in rows if row[5]]
    retiring = frozenset(row[0] for row in rows if row[6])
    addresses = set(map(itemgetter(2), wanted))  # IPv4 and IPv6 addresses never read the same: one set for both
    addresses.update(map(itemgetter(3), wanted))
    if len(addresses) == 2 * len(wanted) and len(set(map(itemgetter(1), wanted))) == len(wanted):
        return {row[1]: _desired_peer(*row) for row in wanted}, retiring, ()
    clashes = _clashes(wanted)
    refused = {session for clash in clashes for session in clash.sessions}
    return {row[1]: _desired_peer(*row) for row in wanted if row[0] not in refused}, retiring, clashes


def _clashes(wanted: list[tuple[str, str, str, str, str]]) -> tuple[Clash, ...]:
    """The keys and addresses claimed by more than one live lease, with those leases' sessions; each logged."""
    claims = Counter(map(itemgetter(1), wanted))
    held = Counter(map(itemgetter(2), wanted))
    held.update(map(itemgetter(3), wanted))
    found: dict[tuple[str, str], list[str]] = {}
    for session_id, key, ipv4, ipv6, _ in wanted:
        for claimed, value, count in (("key", key, claims), ("address", ipv4, held), ("address", ipv6, held)):
            if count[value] > 1:
                found.setdefault((claimed, value), []).append(session_id)
    clashes = tuple(Clash(claimed, value, tuple(sorted(sessions))) for (claimed, value), sessions in found.items())
    for clash in clashes:
        log.warning(
            "%s %s is claimed by %d live sessions (%s); none of them gets a tunnel",
            "WireGuard key" if clash.claimed == "key" else "address",
            clash.value,
            len(clash.sessions),
            ", ".join(clash.sessions),
        )
    return clashes


@functools.lru_cache(maxsize=1 << 17)
def _desired_peer(session_id: str, public_key: str, ipv4: str, ipv6: str, scope: str) -> DesiredPeer:
    # Cached: every safety-net pass reads the same 10,000 rows back.
    return DesiredPeer(session_id, public_key, ipv4, ipv6, _destinations(scope))


def seats_of(peers: Iterable[DesiredPeer]) -> dict[str, tuple[Destination, ...]]:
    seats: dict[str, tuple[Destination, ...]] = {}
    for peer in peers:
        seats[peer.ipv4] = seats[peer.ipv6] = peer.destinations
    return seats


def scope_changes(old: Seats, new: Seats) -> tuple[dict[str, Sequence[Destination]], dict[str, Sequence[Destination]]]:
    """The seats whose elements go (gone or changed) and those whose elements come (new or changed)."""
    removed = {seat: dests for seat, dests in old.items() if new.get(seat) != dests}
    added = {seat: dests for seat, dests in new.items() if old.get(seat) != dests}
    return removed, added


class InstalledTunnel:
    """This node's interface and scope as its passes left them, and the two ways to change them.

    ``peers`` is what the last pass installed (None: unknown, after a start or a pass that failed half-way — the next
    full pass then loads the table whole). ``scope_generation`` is the namespace's nftables generation right after
    our last change of the table (None: unknown, or another program committed at the same moment): while it still
    reads the same, nobody has changed any table since, so the sets hold exactly what ``peers`` put there."""

    def __init__(self, backend: WireGuardBackend, settings: VpnSettings) -> None:
        self.backend, self.settings = backend, settings
        self.peers: Mapping[str, DesiredPeer] | None = None
        self.ruleset = RulesetGeneration(settings.netns)
        self.elements = SetElements(settings.netns)
        self.nftables = nft.Nftables(settings.netns)
        """Loads the table whole; its context is kept (a load of the empty table ~0.5 ms, where a run of the nft
        program took 20-25 ms) until a script of it does not return in time (``_nftables``)."""
        self.scope_generation: int | None = None
        self.chains: Counter[nft.ScopeChain] = Counter()
        """How many seat addresses jump to each scope chain in the table as our last change left it: a chain is there
        while a seat is (as in a whole load of those seats)."""
        self._specs: tuple[Mapping[str, DesiredPeer], Mapping[str, PeerSpec]] | None = None
        self._emptied_at: int | None = None
        """The generation right after ``load_scope_ahead`` loaded the table with no seat (None: it did not)."""
        self._beside = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vpn-scope")
        """Adds a full pass's new seats' elements while wireguard-go creates their peers, and cuts open connections
        (``_cut_beside``); kept from pass to pass, where a thread of each pass's own was started at its first peers
        and joined after its last (0.3-1.1 ms after the last peers at 10,000, load 3-4)."""
        self.pools = conntrack.Pools(
            (settings.pool4, settings.pool6),
            frozenset(address.ip for address in settings.gateway_addresses),
            tuple(address.network for address in settings.gateway_addresses),
            settings.interface,
        )
        self._cuts: list[tuple[Callable[[], Seats], str, conntrack.Pools | None]] = []
        """The cuts asked for that ``_cut_waiting``, submitted at the first of them, has not taken yet."""
        self._cuts_lock = threading.Lock()
        self._cut_owed = False
        """A cut failed since the last one of every installed seat: the next pass makes one (``_cut_beside``)."""

    def apply_all(self, peers: Mapping[str, DesiredPeer], live: Mapping[str, PeerSpec]) -> ReconcileResult:
        """Make the interface hold exactly ``peers`` and the scope allow exactly their destinations."""
        known, self.peers = self.peers, None  # unknown until this pass has finished
        interface = self.settings.interface
        desired = self._specs_of(peers)
        changes = PeerChanges() if live is desired or live == desired else plan_changes(live, desired)
        self.backend.change(interface, PeerChanges(to_remove=changes.to_remove))
        scope_loaded = False
        if self.settings.firewall and (known is None or not self._scope_untouched()):
            self._load_scope_beside_new_peers(peers, live, changes.to_set)
            scope_loaded = True
        else:
            if self.settings.firewall and known is not None and known is not peers and known != peers:
                removed, added = scope_changes(seats_of(known.values()), seats_of(peers.values()))
                self._change_scope(removed, added, peers)
            elif self._cut_owed:  # the scope unchanged, but a cut failed since the last of every seat
                self._cut_out_of_scope_beside(peers)
            self.backend.change(interface, PeerChanges(to_set=changes.to_set))
        self.peers = peers  # shared with the plan (never changed): the next pass expects these very specs
        if changes:
            log.info("VPN peers: %d set, %d removed", len(changes.to_set), len(changes.to_remove))
        return ReconcileResult(peers.keys(), changes, scope_loaded)

    def apply_sessions(self, plan: PeerPlan) -> PeerChanges:
        """Change only the peers of ``plan.sessions``: remove those no longer authorised, set the new or changed."""
        if self.peers is None or plan.sessions is None:  # a full pass failed meanwhile: the retry reads everything
            raise RuntimeError("the tunnel's state is unknown since a pass failed; the next pass compares everything")
        known, self.peers = self.peers, None
        affected = {key for key, peer in known.items() if peer.session_id in plan.sessions} | set(plan.keys)
        # A key that claims the addresses of a peer still here (a person's new certificate, and so new key, gets the
        # addresses of the lease its sign-in is ending) takes them from it: that peer goes now. Its session's end
        # comes in a pass of its own, which would otherwise delete the elements the new key holds by then.
        claimed = {address for peer in plan.peers.values() for address in (peer.ipv4, peer.ipv6)}
        if claimed:  # an end claims nothing: its pass does not look through every peer
            affected |= {
                key
                for key, peer in known.items()
                if (peer.ipv4 in claimed or peer.ipv6 in claimed) and key not in plan.peers
            }
        gone = [key for key in affected if key in known and key not in plan.peers]
        coming = [plan.peers[key] for key in affected if key in plan.peers and known.get(key) != plan.peers[key]]
        interface = self.settings.interface
        # A peer whose scope alone changed keeps its spec: only its set elements change, the peer is not sent again.
        changes = PeerChanges(
            [p.spec() for p in coming if p.public_key not in known or known[p.public_key].spec() != p.spec()], gone
        )
        self.backend.change(interface, PeerChanges(to_remove=gone))
        after = {key: peer for key, peer in known.items() if key not in gone} | {p.public_key: p for p in coming}
        if self.settings.firewall:
            removed = seats_of(known[key] for key in gone + [peer.public_key for peer in coming] if key in known)
            self._change_scope(removed, seats_of(coming), after)
        self.backend.change(interface, PeerChanges(to_set=changes.to_set))
        self.peers = after
        if changes:
            log.info("VPN peers of %d sessions: %d set, %d removed", len(plan.sessions), len(coming), len(gone))
        return changes

    def load_scope_ahead(self, live: Mapping[str, PeerSpec]) -> None:
        """While a full pass reads the database: when the interface holds no peer and the pass will load the table
        whole (the first pass of a life, or nftables changed behind the gateway's back), load it now with no seat.
        With no live peer that load keeps no element, so it needs none of the rows; the pass then skips it if nftables
        is still as this left it (``_load_scope_beside_new_peers``), and starts creating its peers one load sooner: an
        ``nft`` run of 15-25 ms when this was written, ~0.5 ms through libnftables now (with and without this the pass
        then measured the same; docs/vpn.md, eighth round). The new peers' elements still come only with the rows, as
        they are created. Call it under the controller's apply lock. A failure is left to the pass, which then loads
        the table itself."""
        if live or not self.settings.firewall or (self.peers is not None and self._scope_untouched()):
            return
        self.peers = None  # the pass must load (or, as loaded here, keep) the whole table: see apply_all
        try:
            self._load_whole({})
        except (nft.FirewallError, OSError):
            log.warning("could not load the empty scope ahead of the pass; the pass loads it", exc_info=True)
            return
        self._emptied_at = self.scope_generation

    def installed(self) -> Mapping[str, PeerSpec] | None:
        """The specs of the peers the last pass installed (None: unknown): what the interface should hold now, and
        while the database's rows stay the same the very mapping the next full pass will desire."""
        peers = self.peers  # read once: a pass on another thread may set it to None meanwhile
        return None if peers is None else self._specs_of(peers)

    def close(self) -> None:
        # What was not begun is dropped: elements into a context closed below, or a cut the next life's first pass
        # makes again. A cut under way finishes on conntrack sockets of its own, which nothing closed here shares.
        self._beside.shutdown(wait=False, cancel_futures=True)
        self.ruleset.close()
        self.elements.close()
        self.nftables.close()

    def _nftables(self) -> nft.Nftables:
        """The kept context; a new one when a script of the old one did not return in time, as that one runs nothing
        more (``Nftables``): the pass after the one that timed out loads again instead of failing at once for good
        (while the stuck script still holds the library, the new context's script waits for it and times out too)."""
        if self.nftables.wedged:
            self.nftables.close()
            self.nftables = nft.Nftables(self.settings.netns)
        return self.nftables

    def _specs_of(self, peers: Mapping[str, DesiredPeer]) -> Mapping[str, PeerSpec]:
        """The peers' specs; the previous pass's when its peers are the same object (``desired_peers`` hands out the
        same dict while the database's rows are the same)."""
        if self._specs is None or self._specs[0] is not peers:
            self._specs = (peers, {key: peer.spec() for key, peer in peers.items()})
        return self._specs[1]

    def _load_scope_beside_new_peers(
        self, peers: Mapping[str, DesiredPeer], live: Mapping[str, PeerSpec], to_set: Sequence[PeerSpec]
    ) -> None:
        """Load the table whole, then set the peers while nft adds the elements of those not yet on the interface.

        Creating 10,000 peers in wireguard-go takes ~0.5 s, adding their 20,000 elements ~60 ms, on different cores.
        The whole load holds the chains and the elements of the peers already live (they keep their scope
        throughout); the chains of the new peers' scopes the table lacks, then their seats' elements, follow while
        they are being created (``_change_elements``). Until a new peer's elements are in, from_tunnel drops
        everything it sends (no element has its address), and nothing opens a connection towards it (to_tunnel lets
        only replies into the tunnel): no peer ever carries a packet its scope does not allow. Loading only those
        elements first keeps the sequential part of a first pass small (the seats of 10,000 new peers were ~0.2 s of
        rendering and loading before any peer). The open connections the loaded scope refuses are then cut on the same
        thread, the pass not waiting for it (``_cut_out_of_scope_beside``)."""
        interface = self.settings.interface
        new: Set[str]
        if live:
            new = {spec.public_key for spec in to_set if spec.public_key not in live}
            kept = seats_of(peer for key, peer in peers.items() if key not in new)
        else:  # every peer is new and no seat is kept: not looked for peer by peer (~1.5 ms at 10,000)
            new, kept = peers.keys(), {}
        emptied_at, self._emptied_at = self._emptied_at, None
        if kept or emptied_at is None or emptied_at != self.scope_generation or self.ruleset.read() != emptied_at:
            self._load_whole(kept)
        if not new:
            self._cut_out_of_scope_beside(peers)
            self.backend.change(interface, PeerChanges(to_set=list(to_set)))
            return
        installing = self._specs_of(peers)
        adding: list[Future[None]] = []

        def add_new_seats() -> None:
            # Their seats are gathered here too, off the path before the first peers (~4 ms at 10,000).
            self._change_elements({}, seats_of(peers[key] for key in new))

        def add_elements() -> None:
            adding.append(self._beside.submit(add_new_seats))
            # Then, still while wireguard-go creates the peers, what the next pass's comparison needs of them (not
            # waited for: a comparison that comes first makes the same ends itself).
            self._beside.submit(self.backend.expect, interface, installing)
            self._cut_out_of_scope_beside(peers)

        try:
            # The elements' work starts once wireguard-go has its first peers (``begun``): started before, it held the
            # interpreter each time this thread waited to connect and send (a switch interval, 5 ms, a time), and the
            # first peers reached wireguard-go later: p50 63 against 51 ms into a 10,000-peer pass.
            self.backend.change(interface, PeerChanges(to_set=list(to_set)), begun=add_elements)
        finally:
            wait(adding)
        if not adding:  # the backend had no such moment: the elements come now, after the peers
            add_elements()
        adding[0].result()  # a refused change fails the pass: the new peers then send nothing until the retry loads

    def _scope_untouched(self) -> bool:
        """Whether no nftables change was committed in the namespace since our last one (one netlink read)."""
        if self.scope_generation is not None and self.ruleset.read() == self.scope_generation:
            return True
        log.info("nftables changed since the gateway's last change of its scope; loading the scope whole")
        return False

    def _cut_out_of_scope_beside(self, peers: Mapping[str, DesiredPeer]) -> None:
        """After the table was loaded whole, cut every installed seat's open connections that its scope does not
        allow, and every connection of an address of the pools that is no seat (its tunnel went), on ``_beside``
        while wireguard-go sets the peers: the pass does not wait for it. Nothing was cut while the table's state was
        unknown (a scope narrowed while the gateway was restarting, or after a pass failed, a peer removed by a pass
        that failed or in a life before), and conntrack outlives the process: an established TCP entry lives for
        days, and ``from_tunnel`` accepts its packets before it looks at the sets.

        Sound at any time after the load: from it on, every new connection is judged by these seats' sets, and a cut
        only deletes entries, whose next packet is then judged as new by the sets in force at that moment. A later
        pass does not race it harmfully: an entry its scope allows that this older, narrower view deletes is picked
        up again (TCP mid-stream too, with the kernel's default ``nf_conntrack_tcp_loose``; should the server side
        speak first, ``to_tunnel`` drops that packet as no reply, and the home's next one opens the entry again); an
        entry this view keeps that a later, narrower scope refuses is that pass's own cut (``_change_scope``), and
        one deleted by both is no error (``conntrack.cut_disallowed``). Until the cut has run, connections the scope
        refuses go on as they did before the pass. Measured at 10,000 peers (20,000 seats), this namespace's table
        empty: 11-14 ms, nearly all of it the kernel's dump. A failure is logged, and the next pass cuts again."""
        self._cut_owed = False
        # The seats are gathered on that thread too, off the pass (~4 ms at 10,000 peers).
        self._cut_beside(lambda: seats_of(peers.values()), "installed", self.pools)

    def _change_scope(self, removed: Seats, added: Seats, peers: Mapping[str, DesiredPeer]) -> None:
        """Delete and add map elements (at any number of seats cheaper than a whole load: docs/vpn.md); when nft refuses
        (an element was removed by hand), load the table whole, and cut as after any whole load. Otherwise the seats
        whose destinations changed lose the open connections their new scope does not allow, and a seat whose peer
        went loses them all: should its address come back later (its person's next session, in a group whose scope is
        narrower), no connection of the old tunnel may go on under the new one. When a cut failed before, every
        installed seat is cut instead, as after a whole load."""
        if removed or added:
            try:
                self._change_elements(removed, added)
            except nft.FirewallError as error:
                log.warning(
                    "nftables refused to remove %d and add %d seats (%s); loading the scope whole",
                    len(removed),
                    len(added),
                    error,
                )
                self._load_whole(seats_of(peers.values()))
                self._cut_out_of_scope_beside(peers)
                return
        if self._cut_owed:
            self._cut_out_of_scope_beside(peers)
            return
        rescoped = {seat: added[seat] for seat in removed.keys() & added.keys() if removed[seat] != added[seat]}
        gone = dict.fromkeys(removed.keys() - added.keys(), ())
        if rescoped or gone:
            self._cut_beside(lambda: rescoped | gone, "rescoped or gone")

    def _cut_beside(self, seats: Callable[[], Seats], which: str, pools: conntrack.Pools | None = None) -> None:
        """``conntrack.cut_disallowed`` of the ``seats`` (gathered on that thread; ``which``: what they are, for the
        log) on ``_beside``, the pass not waiting: its elements are in, and every new connection is judged by them.
        Merged into the cut still waiting there, if one is (``_cut_waiting``). A failure is logged, not raised, and
        leaves a cut owed: the next pass cuts every installed seat, as after a whole load (it could not tell these
        seats from the others any more)."""
        with self._cuts_lock:
            waiting = bool(self._cuts)
            self._cuts.append((seats, which, pools))
        if not waiting:
            self._beside.submit(self._cut_waiting)

    def _cut_waiting(self) -> None:
        """Every cut asked for since this was submitted, in one dump: each end of a shift's last minutes queued a dump
        of its own (9 ms or more each, the kernel walks the conntrack hash of every namespace), and a full pass adding
        peers waited for them all (``_load_scope_beside_new_peers``). Sound for every cut merged: each was asked for
        after its pass's peer removal and element change (a full pass's new seats' elements, queued here before its
        cut, may come after one it merged into: those seats opened nothing yet), and none has begun. Of a seat named
        twice the later pass's view is taken: the scope in force by then."""
        with self._cuts_lock:
            cuts, self._cuts = self._cuts, []
        which = " and ".join(dict.fromkeys(kind for _, kind, _ in cuts))
        pools = next((pools for _, _, pools in cuts if pools is not None), None)
        try:
            gathered: dict[str, Sequence[Destination]] = {}
            for seats, _, _ in cuts:
                gathered.update(seats())
            count = conntrack.cut_disallowed(gathered, self.settings.netns, pools)
        except Exception:  # nobody waits for this thread: whatever went wrong is logged here
            self._cut_owed = True
            log.exception("could not cut the open connections of the %s seats; the next pass cuts again", which)
            return
        if count:
            log.info("cut %d open connections that %d %s seats may no longer hold", count, len(gathered), which)

    def _load_whole(self, seats: Seats) -> None:
        """Load the table whole with ``seats``: their elements and their scopes' chains."""
        self._write_scope(
            lambda: self._nftables().load(
                TunnelScope(self.settings.interface, seats, self.pools.networks, tuple(self.pools.gateway))
            ),
            whole=True,
        )
        self.chains = nft.chains_of(seats)

    def _change_elements(self, removed: Seats, added: Seats) -> None:
        """Delete the ``removed`` seats' elements and add the ``added`` ones. The chains of scopes no seat in the table
        had come first, in a transaction of their own (a chain nothing jumps to yet sees no packet); a chain no seat
        jumps to any more goes in the elements' transaction, after them."""
        after = self.chains.copy()
        after.subtract(nft.chains_of(removed))
        after.update(nft.chains_of(added))
        after = +after  # the chains some seat still jumps to
        coming = [chain for chain in after if chain not in self.chains]
        going = [chain for chain in self.chains if chain not in after]
        if coming:
            script = "".join(chain.creation() for chain in coming)
            self._write_scope(lambda: self._nftables().run(script), whole=False)
        interface = self.settings.interface
        self._write_scope(
            lambda: self.elements.change(TunnelScope(interface, removed), TunnelScope(interface, added), going),
            whole=False,
        )
        self.chains = after

    def _write_scope(self, write: Callable[[], object], whole: bool) -> None:
        """Run one nft transaction and note the generation it made. The table is then known to be exactly ours only
        when the generation moved by our one commit, and — for a change of elements, which keeps whatever else the
        table held — when it had not moved since our previous one either; otherwise the next full pass loads it
        whole."""
        before, known = self.ruleset.read(), self.scope_generation
        self.scope_generation = None
        write()
        after = self.ruleset.read()
        ours_alone = after == (before + 1) & 0xFFFFFFFF and (whole or before == known)
        self.scope_generation = after if ours_alone else None
