"""The VPN controller: owns this node's WireGuard interface, its key, and what its passes installed.

The passes themselves are the ``vpn.peers`` worker's (``workers.py``): on a nudge (a session started or ended, a
lease written, wireguard-go restarted) and every ``reconcile_seconds``. A nudge pass changes only the nudged sessions'
peers and set elements; an interval pass compares everything and changes what differs. Each pass writes the leases
of sessions that became active in the worker's transaction; the interface and the scope are changed after it
committed, and only then are the leases of ended sessions retired (their peers are gone by then).
"""

import gc
import logging
import os
import shutil
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session

from gateway.clock import Clock, utcnow
from gateway.db import session_scope
from gateway.errors import Unavailable
from gateway.events import publish
from gateway.sessions.models import HomeSession
from gateway.sessions.service import SESSION_ENDED, SESSION_STARTED
from gateway.vpn import ipam, leases, nft
from gateway.vpn.backend import PeerChanges, PeerSpec, WireGuardBackend, WireGuardError
from gateway.vpn.choose import choose_backend, kernel_has_wireguard
from gateway.vpn.client_config import client_config
from gateway.vpn.interface import delete_link
from gateway.vpn.keys import load_or_create_private_key, public_key_of
from gateway.vpn.netlink import NetlinkBackend
from gateway.vpn.reconcile import InstalledTunnel, PeerPlan, ReconcileResult, desired_peers, desired_version
from gateway.vpn.settings import VpnSettings
from gateway.vpn.uapi import UapiBackend
from gateway.workers.contract import Nudge

log = logging.getLogger(__name__)
INTERFACE_RESTARTED = "vpn.interface_restarted"
"""Published when a dead wireguard-go was restarted: its peers are gone, so the next pass compares them all."""
SESSION_TOPICS = frozenset({SESSION_STARTED, SESSION_ENDED, leases.LEASE_WRITTEN})
"""Nudges whose payload is a session id: a pass may then touch that session's peer alone."""


def unavailable_reason(settings: VpnSettings) -> str | None:
    """Why the VPN cannot run on this host, in words an operator can act on; None when it can."""
    if not settings.enabled:
        return "VPN off: vpn.enabled is false (set SOHOGW_VPN__ENABLED=true on a host with root and wireguard-go)"
    if os.geteuid() != 0:
        return "VPN off: the gateway does not run as root; the tunnel and nftables need CAP_NET_ADMIN"
    if settings.firewall and (missing := nft.library_missing()):
        return f"VPN off: {missing}; the tunnel never runs unfiltered"
    if shutil.which("wireguard-go") is None and not kernel_has_wireguard(settings.netns):
        return "VPN off: neither the WireGuard kernel module nor wireguard-go is here (apt-get install wireguard-go)"
    return None


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Hold off Python's cyclic garbage collector while a pass reads or applies 10,000 peers.

    A full pass keeps tens of thousands of containers alive at once (the rows, the live peers' configuration, the
    seats' elements): enough survivors of the young collections to start a full collection inside the pass, which
    walks the whole heap (measured at 10,000 leases: 150-500 ms of the pass's 420 ms of CPU, on the path before
    any peer is set). Nothing a pass makes is cyclic garbage: its temporaries go by reference counting when it
    returns. So the collector is off for the pass and comes back after it; its counters have kept counting, so the
    next allocation runs a young collection of whatever is still alive. Process-wide, like the collector itself: a
    request thread meanwhile makes its cyclic garbage a pass's length later. Left off when someone else turned it
    off, and two overlapping passes may end each other's pause early (it only costs time)."""
    pausing = gc.isenabled()
    if pausing:
        gc.disable()
    try:
        yield
    finally:
        if pausing:
            gc.enable()


def nudged_sessions(nudges: Sequence[Nudge]) -> frozenset[str] | None:
    """The sessions a nudge pass may narrow to; None when it must look at everything (an interval pass, a restart)."""
    if not nudges or any(n.topic not in SESSION_TOPICS or n.payload is None for n in nudges):
        return None
    return frozenset(str(n.payload) for n in nudges)


class VpnController:
    """One node's tunnel: interface, key, status, and the three steps of a pass (``plan``, ``observe``, ``apply``)."""

    def __init__(
        self,
        engine: Engine,
        settings: VpnSettings,
        data_dir: Path,
        clock: Clock = utcnow,
        backend: WireGuardBackend | None = None,
        node: str | None = None,
    ) -> None:
        self.engine, self.settings, self.clock = engine, settings, clock
        self.node = node
        """This node's name: it installs only the tunnels it owns (``TunnelLease.node``); None serves every lease."""
        self.key_file = settings.key_file(data_dir)
        self.backend = backend
        self.tunnel: InstalledTunnel | None = None
        self.public_key: str | None = None
        self.off_reason: str | None = None
        self.last_result: ReconcileResult | None = None
        self.last_reconcile_at: datetime | None = None
        self.last_error: str | None = None
        self._observer: ThreadPoolExecutor | None = None
        """Reads the interface for a full pass while its database read runs; from ``start`` to ``stop``."""
        self._reading = threading.local()
        """``live``: the interface read a full pass's ``plan`` started, for its ``observe`` (one pass runs on one
        thread; the worker's and ``run_once``'s may overlap)."""
        self._applying = threading.Lock()
        """One apply at a time: the worker's passes, and ``run_once`` from a test or the bench."""
        self._full_read: PeerPlan | None = None
        """The last full read of the desired peers, with the version it was read at: reused while that holds."""

    def start(self) -> None:
        """Bring the interface up and run a first full pass (so a restart restores the peers before serving); when
        the host cannot run the VPN, record why and stay off. A failed first pass is the worker's to retry."""
        self.off_reason = unavailable_reason(self.settings)
        if self.off_reason:
            log.warning("%s", self.off_reason)
            return
        try:
            private_key = load_or_create_private_key(self.key_file)
            self.public_key = public_key_of(private_key)
            self.backend = self.backend or self._default_backend()
            self.backend.ensure_interface(
                self.settings.interface, private_key, self.settings.listen_port, self.settings.interface_addresses
            )
        except (WireGuardError, OSError) as error:  # no key file, no TUN device, wireguard-go refused to start
            self.off_reason = f"VPN off: {error}"
            log.error("%s", self.off_reason)
            return
        self.tunnel = InstalledTunnel(self.backend, self.settings)
        self._observer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vpn-observe")
        try:
            self.run_once()
        except Exception:
            log.exception("the first VPN pass failed; the vpn.peers worker retries it")

    @property
    def running(self) -> bool:
        return self.tunnel is not None

    def plan(self, db: Session, nudges: Sequence[Nudge]) -> PeerPlan | None:
        """Write the leases of sessions that became active, then read the desired peers: of the nudged sessions
        alone when the nudges name sessions and the last pass left a known state, else of all — unless the node's
        desired-state version says nothing was written since the last full read (then that read). None when off."""
        if self.tunnel is None:
            return None
        sessions = nudged_sessions(nudges) if self.tunnel.peers is not None else None
        if sessions is None and self._observer is not None:
            # A full pass reads the interface while the database is read: wireguard-go writes its 3 MB answer for
            # 10,000 peers on the other core, and neither read holds anything the other needs.
            self._reading.live = self._observer.submit(self._read_interface, self.tunnel, self.tunnel.installed())
        now = self.clock()
        if sessions is not None:
            # Leases first: a re-login (old session replaced, same key) then keeps its peer, where removing and
            # re-adding it would drop the client's tunnel keys and stall it for up to 15 s.
            leases.lease_missing_sessions(db, now, self.settings, sessions, self.node)
            return desired_peers(db, now, sessions, self.node)
        version = desired_version(db, self.node)
        known = self._full_read
        if known is not None and known.still_current(version, now):
            return known  # nothing a full read depends on was written, and no session ran out of time
        with cyclic_gc_paused():
            leases.lease_missing_sessions(db, now, self.settings, None, self.node)
            self._full_read = replace(desired_peers(db, now, None, self.node), version=version)
        return self._full_read

    def _read_interface(
        self, tunnel: InstalledTunnel, installed: Mapping[str, PeerSpec] | None
    ) -> Mapping[str, PeerSpec]:
        """A full pass's read of the interface, on the observer thread while the database is read; an interface with
        no peer also gets the table it will be loaded with (``InstalledTunnel.load_scope_ahead``)."""
        live = tunnel.backend.peer_configs(self.settings.interface, installed)
        if not live:
            with self._applying:
                tunnel.load_scope_ahead(live)
        return live

    def observe(self, plan: PeerPlan | None) -> Mapping[str, PeerSpec] | None:
        """The live peers' configuration, for a full pass only (``plan`` began reading it): a narrowed pass never
        reads 10,000 peers to change one."""
        live: Future[Mapping[str, PeerSpec]] | None = getattr(self._reading, "live", None)
        self._reading.live = None
        if plan is None or plan.sessions is not None or self.backend is None:
            return None
        return live.result() if live is not None else self.backend.peer_configs(self.settings.interface)

    def apply(self, plan: PeerPlan | None, live: Mapping[str, PeerSpec] | None) -> None:
        tunnel = self.tunnel
        if plan is None or tunnel is None:
            return
        with self._applying, cyclic_gc_paused():
            try:
                if plan.sessions is None:
                    self.last_result = tunnel.apply_all(plan.peers, live or {})
                else:
                    changes: PeerChanges = tunnel.apply_sessions(plan)
                    self.last_result = ReconcileResult((tunnel.peers or {}).keys(), changes, False)
                # Retired once their peers are gone (an ending session waits for this), in a unit of work of its own
                # after the peers changed: a revocation never waits for the bookkeeping.
                retiring = plan.retiring if plan.sessions is None else plan.sessions
                if retiring:
                    with session_scope(self.engine) as db:
                        leases.retire_ended_leases(db, self.clock(), retiring)
            except Exception as error:
                self.last_error = f"{type(error).__name__}: {error}"
                raise
            self.last_reconcile_at, self.last_error = self.clock(), None

    def run_once(self) -> ReconcileResult:
        """One full pass, synchronously (``start`` and tests; the worker runs the same steps)."""
        with session_scope(self.engine) as db:
            plan = self.plan(db, [])
        assert plan is not None, "start() the controller first"
        self.apply(plan, self.observe(plan))
        assert self.last_result is not None
        return self.last_result

    def forget(self) -> None:
        """Know nothing of the interface, its scope or the desired peers: the next pass reads and compares everything,
        as the first pass of a life does (the bench times such a pass)."""
        self._full_read = None
        if self.tunnel is not None:
            self.tunnel.peers = None

    def client_config(self, session: HomeSession) -> str:
        """The agent's WireGuard config, writing the lease in its own transaction (retried when this node's
        pass or another node wrote it at the same moment); the lease's nudge installs the peer."""
        if self.off_reason or self.public_key is None:
            # the operator's reason (it may name a setting) is for the log; the agent reads the catalog's words
            raise Unavailable(self.off_reason or "the VPN is starting; try again in a moment", key="vpn_unavailable")
        public_key = self.public_key
        return ipam.retrying(
            self.engine, lambda db: client_config(db, session, self.settings, public_key, self.clock(), self.node)
        )

    def stop(self) -> None:
        """Take the interface down with every peer: the wireguard-go this controller started (its TUN device goes
        with it), or the kernel link, which would otherwise keep forwarding with no gateway to end its peers."""
        if self.tunnel is not None:
            self.tunnel.close()
        self.tunnel = None
        if self._observer is not None:
            self._observer.shutdown(wait=False)
            self._observer = None
        if isinstance(self.backend, UapiBackend):
            self.backend.stop()
        elif isinstance(self.backend, NetlinkBackend):
            delete_link(self.settings.interface, self.backend.netns)

    def status(self) -> dict[str, object]:
        """For security admins: on or off (and why), the interface, and the last pass."""
        result, full_read = self.last_result, self._full_read
        return {
            "state": "off" if self.off_reason else "on",
            "reason": self.off_reason,
            "interface": self.settings.interface,
            "public_key": self.public_key,
            "endpoint": self.settings.endpoint,
            "peers": len(result.peers) if result else None,
            "last_reconcile_at": self.last_reconcile_at.isoformat() if self.last_reconcile_at else None,
            "last_error": self.last_error,
            # Live leases refused a peer for a key or an address another live lease claims too (as the last full read
            # found them): a fault to look into, as the rows' owners have no tunnel meanwhile.
            "refused": [clash.as_status() for clash in full_read.clashes] if full_read else None,
            "daemon_restarts": sum(d.restarts for d in self.backend.daemons.values())
            if isinstance(self.backend, UapiBackend)
            else None,
        }

    def _default_backend(self) -> WireGuardBackend:
        return choose_backend(self.settings.netns, on_restart=lambda name: publish(INTERFACE_RESTARTED, name))


def start_vpn(
    engine: Engine, settings: VpnSettings, data_dir: Path, clock: Clock = utcnow, node: str | None = None
) -> VpnController:
    """Create and start this node's controller; put it on ``app.state.vpn``. Never raises for a host that cannot
    run the VPN: the controller then stays off and its status says why."""
    controller = VpnController(engine, settings, data_dir, clock, node=node)
    controller.start()
    return controller
