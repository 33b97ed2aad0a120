"""The VPN's background work, on the one worker contract: the leases' scope, the peers and nftables scope, and the
tunnels' health samples."""

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from sqlmodel import Session

from gateway.clock import Clock
from gateway.db import session_scope
from gateway.policies.service import POLICY_CHANGED
from gateway.sessions.service import SESSION_ENDED, SESSION_GROUPS_CHANGED, SESSION_STARTED
from gateway.vpn import health, leases
from gateway.vpn.backend import PeerSpec, PeerState
from gateway.vpn.controller import INTERFACE_RESTARTED, VpnController
from gateway.vpn.reconcile import PeerPlan
from gateway.workers.contract import Nudge, Schedule, Scope, Worker

HEALTH_SECONDS = 15.0
"""Handshakes happen every two minutes while traffic flows; a sample every 15 s shows a dead link soon enough."""
RESCOPE_SECONDS = 60.0
"""The safety net behind the nudges of a policy change or a session's changed groups (one lost in a crash between
commit and delivery): every lease compared, each distinct set of groups evaluated once."""


class TunnelScopes(Worker[list[str], None]):
    """Each live lease's network scope, kept equal to what the policy in force grants its session's groups now: a
    policy imported or rolled back, a person's groups changed in the directory (re-validation). Its world is the
    database: the pass rewrites the leases in the runner's transaction, and their ``LEASE_WRITTEN`` nudges have
    ``vpn.peers`` change those seats' set elements on the node that holds them (``leases.rescope_leases``)."""

    name = "vpn.scope"
    schedule = Schedule(
        interval=timedelta(seconds=RESCOPE_SECONDS),
        topics=frozenset({POLICY_CHANGED, SESSION_GROUPS_CHANGED}),
        scope=Scope.CLUSTER,
    )

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def desired(self, db: Session, nudges: Sequence[Nudge]) -> list[str]:
        everyone = not nudges or any(nudge.topic != SESSION_GROUPS_CHANGED for nudge in nudges)
        sessions = None if everyone else {str(nudge.payload) for nudge in nudges}
        return leases.rescope_leases(db, self.clock(), sessions)

    def apply(self, desired: list[str], observed: None) -> None:
        """Nothing outside the database: the rescoped leases' nudges reach ``vpn.peers`` once the pass commits."""


class TunnelPeers(Worker[PeerPlan | None, Mapping[str, PeerSpec]]):
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

    def observe(self) -> Mapping[str, PeerSpec] | None:
        return self.controller.observe(self._plan)

    def apply(self, desired: PeerPlan | None, observed: Mapping[str, PeerSpec] | None) -> None:
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
    """The VPN's workers; the peers and health do nothing while the controller is off (its status says why)."""
    return [TunnelScopes(controller.clock), TunnelPeers(controller), HealthSampler(controller)]
