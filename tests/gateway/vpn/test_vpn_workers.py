"""The ``vpn.peers`` worker through the one runner, driving a real wireguard-go and nftables in a namespace: a nudge
changes the nudged session's peer and set elements alone, the interval repairs a lost nudge, a failing apply is
retried without stopping the other workers, and after any sequence of starts, ends and restarts the incremental path
leaves exactly what a full pass would (the authorised peers and rules). Sessions are written as a sign-in writes
them; on SQLite and PostgreSQL."""

import base64
import json
import os
import random
import re
import signal
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, update
from sqlmodel import col, select

from gateway.db import session_scope
from gateway.events import nudge_after_commit
from gateway.sessions.models import EndReason, HomeSession, SessionState
from gateway.sessions.service import SESSION_STARTED, end_session
from gateway.vpn import nft
from gateway.vpn.backend import PeerChanges
from gateway.vpn.controller import VpnController
from gateway.vpn.leases import LEASE_WRITTEN
from gateway.vpn.models import LeaseState, TunnelLease
from gateway.vpn.nft_generation import RulesetGeneration
from gateway.vpn.reconcile import desired_peers
from gateway.vpn.scope import TunnelScope
from gateway.vpn.settings import VpnSettings
from gateway.vpn.uapi import UapiBackend
from gateway.vpn.workers import TunnelPeers
from gateway.workers.contract import Schedule
from gateway.workers.runner import WorkerRunner
from tests.gateway.workers.test_runner import RecordingWorker, failed_passes
from tests.support.components import require_programs
from tests.support.workers import wait_for
from tests.vpn.conftest import VPN_PACKAGES, VPN_PROGRAMS
from tests.vpn.netns import NetnsLab

pytestmark = pytest.mark.e2e
NOW = datetime.now(UTC)
SCOPE = json.dumps([["10.77.0.1/32", "tcp", 443], ["172.30.0.0/24", "tcp", 8081]])


class FlakyBackend(UapiBackend):
    """wireguard-go through its socket, refusing the next ``fail_next`` changes (a daemon that hiccups); ``sent``
    holds the key of every peer a change set."""

    fail_next = 0

    def __init__(self, netns: str) -> None:
        super().__init__(netns=netns)
        self.sent: list[str] = []

    def change(self, name: str, changes: PeerChanges, begun: Callable[[], None] | None = None) -> None:
        if self.fail_next and changes:
            self.fail_next -= 1
            raise OSError("the UAPI socket went away")
        super().change(name, changes, begun)
        self.sent += [spec.public_key for spec in changes.to_set]


@dataclass
class Gateway:
    engine: Engine
    lab: NetnsLab
    ns: str
    settings: VpnSettings
    controller: VpnController
    backend: FlakyBackend
    runner: WorkerRunner | None = None

    def peers(self) -> set[str]:
        return set(self.backend.peers(self.settings.interface))

    def seats_in_scope(self) -> set[str]:
        """The seat addresses in the loaded table's seat maps."""
        listing = nft.listing(self.ns)
        found: set[str] = set()
        for name in ("seats4", "seats6"):
            match = re.search(rf"map {name} \{{.*?(?:elements = \{{(.*?)\}})?\s*\}}", listing, re.S)
            if match and match.group(1):
                found |= {item.split(" : ")[0].strip() for item in match.group(1).split(",")}
        return found

    def seat_allows(self, seat: str) -> str:
        """The rules of the scope chain the seat's element jumps to ("" when it jumps to none)."""
        listing = nft.listing(self.ns)
        jump = re.search(rf"(?<![\w.:]){re.escape(seat)} : jump (\w+)", listing)
        chain = jump and re.search(rf"chain {jump.group(1)} \{{(.*?)\n\t\}}", listing, re.S)
        return chain.group(1) if chain else ""

    def scope(self) -> str:
        """The loaded table with each map's elements and the table's chains sorted: nft lists elements in the order
        they were added and chains in the order they were made, which a whole load and a pass's changes differ in
        (neither order means anything to a packet: only the base chains are entered, by their hooks)."""

        def sort(match: re.Match[str]) -> str:
            return "elements = { " + ", ".join(sorted(" ".join(e.split()) for e in match.group(1).split(","))) + " }"

        listing = re.sub(r"elements = \{(.*?)\}", sort, nft.listing(self.ns), flags=re.S)
        return "\n".join(sorted(re.findall(r"^\t\S.*?^\t\}$", listing, re.S | re.M)))

    def settled(self) -> bool:
        """Whether the last pass has finished and installed what the database wants now (no pass is under way:
        one sets the tunnel's installed peers to unknown while it runs)."""
        with session_scope(self.engine) as db:
            desired = desired_peers(db, NOW).peers
        tunnel = self.controller.tunnel
        return tunnel is not None and tunnel.peers == desired

    def start(self, interval: float = 3600) -> WorkerRunner:
        self.settings.reconcile_seconds = interval
        self.controller.start()
        self.runner = WorkerRunner([TunnelPeers(self.controller)], self.engine)
        self.runner.start()
        return self.runner


@pytest.fixture
def gateway(engine: Engine, tmp_path: Path) -> Iterator[Gateway]:
    require_programs(*VPN_PROGRAMS, install=VPN_PACKAGES)
    with NetnsLab() as lab:
        ns = lab.add("gw")
        settings = VpnSettings(
            enabled=True, interface=lab.name("wgw"), netns=ns, private_key_file=tmp_path / "wg.key", firewall=True
        )
        backend = FlakyBackend(netns=ns)
        controller = VpnController(engine, settings, tmp_path, backend=backend)
        made = Gateway(engine, lab, ns, settings, controller, backend)
        try:
            yield made
        finally:
            if made.runner is not None:
                made.runner.stop()
            controller.stop()


_counter = iter(range(2, 60000))


def _sign_in(
    engine: Engine,
    *,
    nudge: bool = True,
    key: str | None = None,
    addresses: tuple[str, str] | None = None,
    scope: str = SCOPE,
) -> tuple[str, str, str, str]:
    """A live session with its tunnel lease, committed (and nudged, as a sign-in does); its id, key and addresses.
    ``addresses`` are the person's own when they sign in again (IPAM keeps them); ``scope`` the policy's then."""
    number = next(_counter)
    key = key or base64.b64encode(os.urandom(32)).decode()
    with session_scope(engine) as db:
        session = HomeSession(
            id=os.urandom(16).hex(), token_sha256=os.urandom(32).hex(), csrf_token="x", state=SessionState.ACTIVE,
            person_id=f"test:agent{number}", login=f"agent{number}", user_dn=f"cn=agent{number}", roles="agent",
            groups="[]", policy_groups="[]", wireguard_key=key, source_ip="", created_at=NOW, last_seen_at=NOW,
            last_checked_at=NOW, idle_timeout_seconds=3600, expires_at=NOW + timedelta(hours=8),
        )  # fmt: skip
        db.add(session)
        ipv4, ipv6 = addresses or (f"10.77.{number // 250}.{number % 250 + 2}", f"fd77::{number:x}")
        db.add(
            TunnelLease(
                session_id=session.id, person_id=session.person_id, login=session.login, public_key=key, ipv4=ipv4,
                ipv6=ipv6, scope=scope, state=LeaseState.DESIRED, created_at=NOW,
            )
        )  # fmt: skip
        if nudge:
            nudge_after_commit(db, SESSION_STARTED, session.id)
        return session.id, key, ipv4, ipv6


def _end(engine: Engine, session_id: str) -> None:
    with session_scope(engine) as db:
        end_session(db, db.get_one(HomeSession, session_id), EndReason.ADMIN, actor="admin1", now=NOW)


def test_a_nudge_adds_and_removes_the_sessions_peer_and_seat_without_a_full_pass(gateway: Gateway) -> None:
    _, bystander_key, bystander_ip, _ = _sign_in(gateway.engine, nudge=False)
    runner = gateway.start()  # start() ran the first, full pass: the bystander is there, and no interval follows
    assert gateway.peers() == {bystander_key} and bystander_ip in gateway.seats_in_scope()
    session_id, key, ipv4, _ = _sign_in(gateway.engine)
    assert wait_for(lambda: gateway.peers() == {bystander_key, key})
    assert gateway.seats_in_scope() >= {ipv4, bystander_ip}
    _end(gateway.engine, session_id)
    assert wait_for(lambda: gateway.peers() == {bystander_key})
    assert wait_for(
        lambda: ipv4 not in gateway.seats_in_scope()
    )  # the peer goes first, then its elements and bystander_ip in gateway.seats_in_scope()
    assert not gateway.controller.last_result.scope_loaded  # type: ignore[union-attr]  # elements, no reload
    assert runner.status("vpn.peers").consecutive_failures == 0


def test_the_interval_repairs_a_lost_nudge(gateway: Gateway) -> None:
    gateway.start(interval=0.5)
    _, key, ipv4, _ = _sign_in(gateway.engine, nudge=False)  # written as a node that crashed before its nudge
    assert wait_for(lambda: key in gateway.peers())
    assert ipv4 in gateway.seats_in_scope()


NARROWED = json.dumps([["10.77.0.1/32", "tcp", 443]])


def _rescope(engine: Engine, session_id: str | list[str], scope: str, *, nudge: bool) -> None:
    """The leases' scope rewritten as ``leases.rescope_leases`` writes it (nudged, in one transaction), or by a node
    that crashed before its nudge was delivered."""
    with session_scope(engine) as db:
        for one in [session_id] if isinstance(session_id, str) else session_id:
            lease = db.exec(select(TunnelLease).where(TunnelLease.session_id == one)).one()
            lease.scope = scope
            db.add(lease)
            if nudge:
                nudge_after_commit(db, LEASE_WRITTEN, one)


def _emptied_after_a_restart(gateway: Gateway) -> tuple[str, set[str]]:
    """Sessions of every scope signed in and applied once, then the interface's peers and the nftables table gone
    and the controller's memory of them forgotten, as after a restart: (the scope and the peers a pass must restore,
    and nothing else)."""
    for scope in SCOPES:
        _sign_in(gateway.engine, nudge=False, scope=scope)
    gateway.controller.start()
    loaded, authorised = gateway.scope(), gateway.peers()
    gateway.backend.change(gateway.settings.interface, PeerChanges(to_remove=list(authorised)))
    nft.remove(gateway.ns)
    gateway.controller.forget()
    return loaded, authorised


def _reaches_trust(gateway: Gateway, ipv4: str) -> bool:
    return "172.30.0.0/24 . tcp . 8081" in gateway.seat_allows(ipv4)


def test_a_rescoped_lease_changes_its_seats_elements_on_the_nudge_and_keeps_its_peer(gateway: Gateway) -> None:
    _, bystander_key, bystander_ip, _ = _sign_in(gateway.engine, nudge=False)
    session_id, key, ipv4, _ = _sign_in(gateway.engine, nudge=False)
    gateway.start()  # the first, full pass; no interval pass follows within the test
    assert _reaches_trust(gateway, ipv4) and _reaches_trust(gateway, bystander_ip)
    sent_before = list(gateway.backend.sent)
    _rescope(gateway.engine, session_id, NARROWED, nudge=True)
    assert wait_for(lambda: not _reaches_trust(gateway, ipv4), seconds=2)
    assert "10.77.0.1 . tcp . 443" in gateway.seat_allows(ipv4) and _reaches_trust(gateway, bystander_ip)
    assert wait_for(gateway.settled)
    assert gateway.backend.sent == sent_before  # only set elements changed: the peer was not sent again
    assert gateway.peers() == {key, bystander_key} and not gateway.controller.last_result.scope_loaded  # type: ignore[union-attr]
    _rescope(gateway.engine, session_id, SCOPE, nudge=True)  # widened again
    assert wait_for(lambda: _reaches_trust(gateway, ipv4), seconds=2)


def test_many_seats_rescoped_at_once_change_their_elements_alone_and_get_the_table_a_whole_load_would_give(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A policy change rescoping many seats at once changes their elements, not the whole table (cheaper at any number
    of seats since a seat is one hash element: docs/vpn.md): the result is the table a whole load gives, and the seats
    not rescoped keep their destinations."""
    rescoped = [_sign_in(gateway.engine, nudge=False) for _ in range(20)]
    _, _, bystander_ip, _ = _sign_in(gateway.engine, nudge=False)
    gateway.start()
    tunnel = gateway.controller.tunnel
    assert tunnel is not None
    loads: list[TunnelScope] = []
    load = tunnel.nftables.load

    def counted_load(scope: TunnelScope) -> None:
        loads.append(scope)
        load(scope)

    monkeypatch.setattr(tunnel.nftables, "load", counted_load)
    _rescope(gateway.engine, [session_id for session_id, *_ in rescoped], NARROWED, nudge=True)
    assert wait_for(lambda: not any(_reaches_trust(gateway, ipv4) for _, _, ipv4, _ in rescoped), seconds=5)
    assert wait_for(gateway.settled) and _reaches_trust(gateway, bystander_ip)
    assert loads == []
    loaded = gateway.scope()
    nft.remove(gateway.ns)
    assert gateway.controller.run_once().scope_loaded and gateway.scope() == loaded


def test_the_interval_applies_a_lease_scope_changed_without_a_nudge(gateway: Gateway) -> None:
    session_id, _, ipv4, _ = _sign_in(gateway.engine, nudge=False)
    gateway.start(interval=0.5)
    assert _reaches_trust(gateway, ipv4)
    _rescope(gateway.engine, session_id, NARROWED, nudge=False)
    assert wait_for(lambda: not _reaches_trust(gateway, ipv4), seconds=3)
    assert "10.77.0.1 . tcp . 443" in gateway.seat_allows(ipv4)


def test_a_failing_apply_is_retried_and_does_not_stop_the_other_workers(gateway: Gateway) -> None:
    gateway.controller.start()
    other = RecordingWorker(
        "test.beside_vpn", Schedule(interval=timedelta(hours=1), topics=frozenset({SESSION_STARTED}))
    )
    gateway.runner = WorkerRunner([TunnelPeers(gateway.controller), other], gateway.engine)
    failed_before = failed_passes("vpn.peers")
    gateway.backend.fail_next = 1
    gateway.runner.start()
    _sign_in(gateway.engine)
    key = _latest_key(gateway.engine)
    assert wait_for(lambda: len(other.applied) >= 2)  # the other worker had its nudged pass meanwhile
    assert wait_for(lambda: key in gateway.peers(), seconds=10)  # the retry, after a back-off of one second
    runner = gateway.runner
    assert wait_for(lambda: runner.status("vpn.peers").consecutive_failures == 0)  # the retry's pass has finished
    assert failed_passes("vpn.peers") - failed_before == 1


SCOPES = [
    SCOPE,
    json.dumps([["10.77.0.1/32", "tcp", 443]]),
    json.dumps([["172.30.0.0/16", "tcp", None], ["172.30.1.0/24", "udp", 53], ["fd30::/64", "tcp", 443]]),
    json.dumps([["172.30.0.0/24", "icmp", None], ["fd30::/64", "icmp", None]]),
]


@pytest.mark.parametrize("seed", [16, 19])
def test_random_starts_ends_and_restarts_leave_exactly_what_a_full_pass_would(gateway: Gateway, seed: int) -> None:
    """Moves a sign-in really makes: a new person, an end, the same person again with the same key and addresses
    (its peer kept, its scope perhaps another policy's), or with a new key on the same addresses (a new certificate:
    one peer goes, another takes its addresses in the same pass)."""
    chooser = random.Random(seed)
    gateway.start()
    live: dict[str, tuple[str, str, str]] = {}
    for step in range(48):
        move = chooser.choice(["start", "start", "end", "same key", "new key"] if live else ["start"])
        if move == "start":
            session_id, *held = _sign_in(gateway.engine, scope=chooser.choice(SCOPES))
            live[session_id] = (held[0], held[1], held[2])
        elif move == "end":
            session_id = chooser.choice(sorted(live))
            _end(gateway.engine, session_id)
            del live[session_id]
        else:  # the person signs in again: the old session ends, the new one keeps the person's addresses
            old = chooser.choice(sorted(live))
            key, ipv4, ipv6 = live.pop(old)
            _end(gateway.engine, old)
            session_id, *held = _sign_in(
                gateway.engine,
                key=key if move == "same key" else None,
                addresses=(ipv4, ipv6),
                scope=chooser.choice(SCOPES),
            )
            live[session_id] = (held[0], held[1], held[2])
        if step % 8 == 7:
            want = {key for key, _, _ in live.values()}
            assert wait_for(lambda expected=want: gateway.peers() == expected), (step, gateway.peers() ^ want)
    want_peers = {key for key, _, _ in live.values()}
    want_seats = {address for _, ipv4, ipv6 in live.values() for address in (ipv4, ipv6)}
    assert wait_for(lambda: gateway.peers() == want_peers and gateway.seats_in_scope() == want_seats)
    assert wait_for(gateway.settled)  # a re-login on the same key and addresses changes elements, not peers or seats
    incremental_scope = gateway.scope()
    full = gateway.controller.run_once()  # a full pass compares everything: it must find nothing to change
    assert not full.changes and not full.scope_loaded
    assert gateway.scope() == incremental_scope
    nft.remove(gateway.ns)  # a full load from nothing gives the same table, rule for rule
    full = gateway.controller.run_once()
    assert full.scope_loaded and gateway.scope() == incremental_scope
    with session_scope(gateway.engine) as db:
        leased = set(db.exec(select(TunnelLease.public_key).where(TunnelLease.state == LeaseState.DESIRED)).all())
    assert leased == want_peers


def test_a_safety_net_pass_undoes_what_was_changed_by_hand_and_leaves_the_rest_alone(gateway: Gateway) -> None:
    """The interval pass does not list the 10,000-seat table or rewrite matching peers, yet sees every change made
    behind its back: set elements deleted or added by hand, a foreign table, peers removed or added or given other
    addresses, a wireguard-go that was killed and restarted empty."""
    signed_in = [_sign_in(gateway.engine, nudge=False, scope=scope) for scope in SCOPES]
    gateway.controller.start()
    authorised = {key for _, key, _, _ in signed_in}
    interface, ns, run = gateway.settings.interface, gateway.ns, gateway.lab.run
    loaded = gateway.scope()  # the first pass created the peers while nft added their destinations
    nft.remove(ns)
    assert gateway.controller.run_once().scope_loaded and gateway.scope() == loaded  # the same as loaded in one go
    unchanged = gateway.controller.run_once()
    assert not unchanged.changes and not unchanged.scope_loaded and gateway.scope() == loaded

    _, _, ipv4, ipv6 = signed_in[2]
    chain = re.findall(rf"{ipv4} : jump (\w+)", nft.listing(ns))[0]
    run(ns, "nft", "delete", "element", "inet", "sohogw", "seats6", f"{{ {ipv6} }}")
    run(ns, "nft", "flush", "chain", "inet", "sohogw", chain)
    assert gateway.scope() != loaded
    assert gateway.controller.run_once().scope_loaded and gateway.scope() == loaded
    run(ns, "nft", "add", "rule", "inet", "sohogw", chain, "tcp", "dport", "22", "accept")
    assert gateway.controller.run_once().scope_loaded and gateway.scope() == loaded
    run(ns, "nft", "add", "element", "inet", "sohogw", "seats4", "{ 10.77.99.9 : accept }")
    assert gateway.controller.run_once().scope_loaded and gateway.scope() == loaded
    run(ns, "nft", "add", "table", "inet", "foreign")  # another program's commit: ours is checked again, theirs kept
    assert gateway.controller.run_once().scope_loaded and gateway.scope() == loaded
    assert "table inet foreign" in run(ns, "nft", "list", "tables").stdout
    assert not gateway.controller.run_once().scope_loaded

    gateway.backend.remove_peer(interface, signed_in[0][1])
    intruder = base64.b64encode(os.urandom(32)).decode()
    run(ns, "wg", "set", interface, "peer", intruder, "allowed-ips", "10.77.200.1/32")
    repaired = gateway.controller.run_once()
    assert [spec.public_key for spec in repaired.changes.to_set] == [signed_in[0][1]]
    assert repaired.changes.to_remove == [intruder] and gateway.peers() == authorised
    run(ns, "wg", "set", interface, "peer", signed_in[1][1], "allowed-ips", "10.77.250.1/32")  # its seat moved
    assert [spec.public_key for spec in gateway.controller.run_once().changes.to_set] == [signed_in[1][1]]
    assert gateway.backend.peers(interface)[signed_in[1][1]].allowed_ips == {
        f"{signed_in[1][2]}/32",
        f"{signed_in[1][3]}/128",
    }

    daemon = gateway.backend.daemons[interface]
    os.kill(daemon.pid or 0, signal.SIGKILL)
    assert wait_for(lambda: daemon.restarts == 1 and daemon.pid is not None, seconds=10)
    assert wait_for(lambda: gateway.backend.peers(interface) == {}, seconds=5)  # the new daemon starts empty
    assert len(gateway.controller.run_once().changes.to_set) == len(authorised) and gateway.peers() == authorised
    assert gateway.scope() == loaded


def test_the_pass_after_a_table_load_that_timed_out_loads_it_with_a_new_context(gateway: Gateway) -> None:
    """A script past its time gives its libnftables context up (it runs nothing more); the next pass makes a new one
    rather than failing at once for ever."""
    signed_in = [_sign_in(gateway.engine, nudge=False) for _ in range(3)]
    gateway.controller.start()
    loaded = gateway.scope()
    tunnel = gateway.controller.tunnel
    assert tunnel is not None and len(signed_in) == 3
    timed_out = tunnel.nftables
    timed_out.timeout = 0  # no script answers in no time
    nft.remove(gateway.ns)
    with pytest.raises(nft.FirewallError, match="no answer within 0 s"):
        gateway.controller.run_once()
    assert timed_out.wedged
    assert gateway.controller.run_once().scope_loaded and gateway.scope() == loaded
    assert tunnel.nftables is not timed_out and not tunnel.nftables.wedged


@pytest.mark.parametrize("hand_edit", [False, True], ids=["untouched", "nftables changed meanwhile"])
def test_a_pass_onto_an_empty_interface_loads_its_table_while_the_database_is_read_and_again_only_if_it_changed(
    gateway: Gateway, hand_edit: bool
) -> None:
    """With no peer on the interface, a full pass's table holds no seat whatever the rows say: it is loaded while the
    database is read, and the pass then only adds its peers' scope chains and elements (two commits). A commit by
    anyone in between (here an element added by hand) makes the pass load the table itself; either way it leaves
    what one whole load gives."""
    ns, controller = gateway.ns, gateway.controller
    loaded, authorised = _emptied_after_a_restart(gateway)  # from nothing, as after a restart
    generation = RulesetGeneration(ns)
    before = generation.read()
    with session_scope(gateway.engine) as db:
        plan = controller.plan(db, [])
    live = controller.observe(plan)
    assert live == {} and nft.loaded(ns) and generation.read() == before + 1  # loaded before any peer was applied
    if hand_edit:
        gateway.lab.run(ns, "nft", "add", "element", "inet", "sohogw", "seats4", "{ 10.77.99.9 : accept }")
    controller.apply(plan, live)
    assert controller.last_result is not None and controller.last_result.scope_loaded
    assert generation.read() == before + (5 if hand_edit else 3)  # chains and elements, or the table again first
    assert gateway.scope() == loaded and gateway.peers() == authorised
    assert not controller.run_once().scope_loaded  # and the next pass trusts what this one left


@pytest.mark.parametrize("says_begun", [True, False], ids=["backend-says-begun", "backend-never-says"])
def test_a_full_pass_adds_its_new_peers_elements_once_the_backend_has_begun_on_them_or_after_them(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch, says_begun: bool
) -> None:
    """The elements' thread starts once wireguard-go has the first new peers (started before, it held the
    interpreter while the pass connected and sent, and the first peers went out later); a backend with no such moment
    (``begun`` never called) still gets them, after its peers. Either way the table is what one whole load gives."""
    controller = gateway.controller
    loaded, authorised = _emptied_after_a_restart(gateway)
    events: list[str] = []
    tunnel = controller.tunnel
    assert tunnel is not None
    change_elements = tunnel.elements.change

    def elements(removed: TunnelScope, added: TunnelScope, chains_gone: Collection[nft.ScopeChain] = ()) -> None:
        events.append("elements")
        change_elements(removed, added, chains_gone)

    change_peers = FlakyBackend.change

    def peers(backend: FlakyBackend, name: str, changes: PeerChanges, begun: Callable[[], None] | None = None) -> None:
        def first_sent() -> None:
            events.append("peers begun")
            if begun is not None:
                begun()

        change_peers(backend, name, changes, first_sent if says_begun else None)
        events.append("peers set")

    monkeypatch.setattr(tunnel.elements, "change", elements)
    monkeypatch.setattr(FlakyBackend, "change", peers)
    assert controller.run_once().scope_loaded
    assert events[0] == "peers set"  # the removals (none)
    if says_begun:  # the elements may be in before or after the last peers
        assert sorted(events[1:]) == ["elements", "peers begun", "peers set"] and events[1] == "peers begun"
    else:
        assert events[1:] == ["peers set", "elements"]
    assert gateway.scope() == loaded and gateway.peers() == authorised
    assert not controller.run_once().scope_loaded


def test_a_safety_net_pass_reads_no_lease_while_nothing_changed_yet_sees_a_write_behind_its_back_and_time_running_out(
    gateway: Gateway,
) -> None:
    """The node's desired-state version (bumped by the database's triggers) stands for the 10,000 rows: an unchanged
    pass asks for it alone; a session ended by a bare UPDATE (no service, no nudge) and one whose time ran out (no
    write at all) still lose their peers at the next pass."""
    (ended, ended_key, _, _), (expiring, expiring_key, _, _), (_, staying_key, _, _) = [
        _sign_in(gateway.engine, nudge=False) for _ in range(3)
    ]
    end_of_time = NOW + timedelta(hours=1)
    with session_scope(gateway.engine) as db:
        db.execute(update(HomeSession).where(col(HomeSession.id) == expiring).values(expires_at=end_of_time))
    gateway.controller.start()
    statements: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    event.listen(gateway.engine, "before_cursor_execute", note)
    try:
        assert not gateway.controller.run_once().changes
        assert statements and not [s for s in statements if "vpn_tunnel_lease" in s or "home_session" in s]
        gateway.controller.clock = lambda: end_of_time
        assert gateway.controller.run_once().changes.to_remove == [expiring_key]
        assert not gateway.controller.run_once().changes
        with session_scope(gateway.engine) as db:
            db.execute(update(HomeSession).where(col(HomeSession.id) == ended).values(state=SessionState.ENDED))
        statements.clear()
        assert gateway.controller.run_once().changes.to_remove == [ended_key]
        assert [s for s in statements if "vpn_tunnel_lease" in s]  # read in full again
    finally:
        event.remove(gateway.engine, "before_cursor_execute", note)
    assert gateway.peers() == {staying_key}


def _latest_key(engine: Engine) -> str:
    with session_scope(engine) as db:
        return db.exec(select(TunnelLease.public_key).order_by(TunnelLease.id.desc())).first() or ""  # type: ignore[union-attr]
