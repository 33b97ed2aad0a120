"""The VPN controller: owns the WireGuard backend and the reconcile loop of this node.

The loop runs every `reconcile_seconds` and at once when nudged (a session started or ended, wireguard-go
was restarted). Each pass: write the leases of sessions that became active and retire those of sessions
that ended, make the interface and scope match, and sample peer health. A failed pass is logged and
retried by the next one; the loop itself never dies.
"""

import logging
import os
import shutil
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from gateway.clock import Clock, utcnow
from gateway.db import session_scope
from gateway.errors import Unavailable
from gateway.events import listen, unlisten
from gateway.sessions.models import HomeSession
from gateway.sessions.service import SESSION_ENDED, SESSION_STARTED
from gateway.vpn import health, ipam, leases
from gateway.vpn.backend import WireGuardBackend, WireGuardError
from gateway.vpn.choose import choose_backend, kernel_has_wireguard
from gateway.vpn.client_config import client_config
from gateway.vpn.keys import load_or_create_private_key, public_key_of
from gateway.vpn.reconcile import ReconcileResult, reconcile
from gateway.vpn.settings import VpnSettings
from gateway.vpn.uapi import UapiBackend

log = logging.getLogger(__name__)
TOPICS = (SESSION_STARTED, SESSION_ENDED, leases.LEASE_WRITTEN)


def unavailable_reason(settings: VpnSettings) -> str | None:
    """Why the VPN cannot run on this host, in words an operator can act on; None when it can."""
    if not settings.enabled:
        return "VPN off: vpn.enabled is false (set SOHOGW_VPN__ENABLED=true on a host with root and wireguard-go)"
    if os.geteuid() != 0:
        return "VPN off: the gateway does not run as root; the tunnel and nftables need CAP_NET_ADMIN"
    if settings.firewall and shutil.which("nft") is None:
        return "VPN off: nft is not installed (apt-get install nftables); the tunnel never runs unfiltered"
    if shutil.which("wireguard-go") is None and not kernel_has_wireguard(settings.netns):
        return "VPN off: neither the WireGuard kernel module nor wireguard-go is here (apt-get install wireguard-go)"
    return None


class VpnController:
    """One node's tunnel: interface, peers, scope, health. `start`, `nudge`, `status`, `stop`."""

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
        self.public_key: str | None = None
        self.off_reason: str | None = None
        self.last_result: ReconcileResult | None = None
        self.last_reconcile_at: datetime | None = None
        self.last_error: str | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bring the interface up and start the loop; when the host cannot run the VPN, record why and stay off."""
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
        for topic in TOPICS:
            listen(topic, self._on_session_change)
        self._stopping.clear()
        self._pass()
        self._thread = threading.Thread(target=self._loop, name="vpn reconcile", daemon=True)
        self._thread.start()

    def nudge(self, *_: Any) -> None:
        """Reconcile now rather than at the next tick (safe from any thread)."""
        self._wake.set()

    def run_once(self) -> ReconcileResult:
        """One full pass, synchronously (the loop calls this; tests and the bench may too)."""
        assert self.backend is not None, "start() the controller first"
        with self._lock:
            # Leases first: a re-login (old session replaced, same key) then keeps its peer, where removing and
            # re-adding it would drop the client's tunnel keys and stall it for up to 15 s.
            ipam.retrying(self.engine, self._bookkeeping)
            result = self._reconcile()
            live = self.backend.peers(self.settings.interface)
            with session_scope(self.engine) as db:
                health.record_samples(db, live, self.clock())
            self.last_result, self.last_reconcile_at, self.last_error = result, self.clock(), None
            return result

    def client_config(self, session: HomeSession) -> str:
        """The agent's WireGuard config, writing the lease in its own transaction (retried when this node's
        loop or another node wrote it at the same moment), and nudging the loop to install the peer."""
        if self.off_reason or self.public_key is None:
            raise Unavailable(self.off_reason or "the VPN is starting; try again in a moment")
        public_key = self.public_key
        return ipam.retrying(
            self.engine, lambda db: client_config(db, session, self.settings, public_key, self.clock(), self.node)
        )

    def stop(self) -> None:
        """Stop the loop and the wireguard-go this controller started (its interface and peers go with it)."""
        for topic in TOPICS:
            unlisten(topic, self._on_session_change)
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)
        if isinstance(self.backend, UapiBackend):
            self.backend.stop()

    def status(self) -> dict[str, object]:
        """For security admins: on or off (and why), the interface, and the last pass."""
        result = self.last_result
        return {
            "state": "off" if self.off_reason else "on",
            "reason": self.off_reason,
            "interface": self.settings.interface,
            "public_key": self.public_key,
            "endpoint": self.settings.endpoint,
            "peers": len(result.peers) if result else None,
            "last_reconcile_at": self.last_reconcile_at.isoformat() if self.last_reconcile_at else None,
            "last_error": self.last_error,
            "daemon_restarts": sum(d.restarts for d in self.backend.daemons.values())
            if isinstance(self.backend, UapiBackend)
            else None,
        }

    def _default_backend(self) -> WireGuardBackend:
        return choose_backend(self.settings.netns, on_restart=self.nudge)

    def _reconcile(self) -> ReconcileResult:
        assert self.backend is not None
        with Session(self.engine, expire_on_commit=False) as db:
            return reconcile(db, self.backend, self.settings, self.clock(), self.last_result, self.node)

    def _bookkeeping(self, db: Session) -> int:
        now = self.clock()
        return leases.lease_missing_sessions(db, now, self.settings, self.node) + leases.retire_ended_leases(db, now)

    def _on_session_change(self, _topic: str, _session_id: object) -> None:
        self.nudge()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.settings.reconcile_seconds)
            self._wake.clear()
            if self._stopping.is_set():
                return
            self._pass()

    def _pass(self) -> None:
        try:
            self.run_once()
        except Exception as error:  # the next pass retries; the loop must outlive any one failure
            self.last_error = str(error)
            log.exception("VPN reconcile failed; retrying in %s s", self.settings.reconcile_seconds)


def start_vpn(
    engine: Engine, settings: VpnSettings, data_dir: Path, clock: Clock = utcnow, node: str | None = None
) -> VpnController:
    """Create and start this node's controller; put it on ``app.state.vpn``. Never raises for a host that cannot
    run the VPN: the controller then stays off and its status says why."""
    controller = VpnController(engine, settings, data_dir, clock, node=node)
    controller.start()
    return controller
