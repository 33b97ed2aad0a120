"""The VPN's background work, on the one worker contract: the peers and scope, and the tunnels' health samples."""

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlmodel import Session

from gateway.db import session_scope
from gateway.sessions.service import SESSION_ENDED, SESSION_STARTED
from gateway.vpn import health, leases
from gateway.vpn.backend import PeerSpec, PeerState
from gateway.vpn.controller import INTERFACE_RESTARTED, VpnController
from gateway.vpn.reconcile import PeerPlan
from gateway.workers.contract import Nudge, Schedule, Worker

HEALTH_SECONDS = 15.0
"""Handshakes happen every two minutes while traffic flows; a sample every 15 s shows a dead link soon enough."""


class TunnelPeers(Worker[PeerPlan | None, dict[str, PeerSpec]]):
    """This node's peers and nftables scope, made to match the live sessions' leases (``controller.py``)."""

    name = "vpn.peers"

    def __init__(self, controller: VpnController) -> None:
        self.controller = controller
        self.schedule = Schedule(
            interval=timedelta(seconds=controller.settings.reconcile_seconds),
            topics=frozenset({SESSION_STARTED, SESSION_ENDED, leases.LEASE_WRITTEN, INTERFACE_RESTARTED}),
            first_pass_delay=timedelta(seconds=controller.settings.reconcile_seconds),  # start() ran the first
        )
        self._plan: PeerPlan | None = None

    def desired(self, db: Session, nudges: Sequence[Nudge]) -> PeerPlan | None:
        self._plan = self.controller.plan(db, nudges)
        return self._plan

    def observe(self) -> dict[str, PeerSpec] | None:
        return self.controller.observe(self._plan)

    def apply(self, desired: PeerPlan | None, observed: dict[str, PeerSpec] | None) -> None:
        self.controller.apply(desired, observed)

    def stop(self) -> None:
        self.controller.stop()


class HealthSampler(Worker[None, dict[str, PeerState]]):
    """Stores each live peer's handshake, endpoint and traffic on its lease, for supervision's wall."""

    name = "vpn.health"
    schedule = Schedule(interval=timedelta(seconds=HEALTH_SECONDS))

    def __init__(self, controller: VpnController) -> None:
        self.controller = controller

    def desired(self, db: Session, nudges: Sequence[Nudge]) -> None:
        return None

    def observe(self) -> dict[str, PeerState] | None:
        backend = self.controller.backend
        return backend.peers(self.controller.settings.interface) if self.controller.running and backend else None

    def apply(self, desired: None, observed: dict[str, PeerState] | None) -> None:
        if observed is not None:
            with session_scope(self.controller.engine) as db:
                health.record_samples(db, observed, self.controller.clock())


def vpn_workers(controller: VpnController) -> list[Worker[Any, Any]]:
    """The VPN's workers; they do nothing while the controller is off (its status says why)."""
    return [TunnelPeers(controller), HealthSampler(controller)]
