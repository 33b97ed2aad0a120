"""This node's part in the cluster, as workers of the one contract: its heartbeat, and the look for dead nodes.

Both run on every node (``Scope.NODE``): every node beats for itself, and every node looks for silent ones, the row
lock choosing the one survivor that declares each death (``service.declare_dead_nodes``). Both write in their own
unit of work in ``apply``, as the contract asks of a worker whose world is the database.
"""

import logging
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import Engine
from sqlmodel import Session

from gateway.clock import Clock
from gateway.db import session_scope
from gateway.nodes import service
from gateway.nodes.models import GatewayNode
from gateway.nodes.settings import ClusterSettings
from gateway.workers.contract import Nudge, Schedule, Scope, Worker

log = logging.getLogger(__name__)


class NodeHeartbeat(Worker[None, None]):
    """Writes this node's beat every ``heartbeat_seconds``."""

    name = "nodes.heartbeat"

    def __init__(self, engine: Engine, node: GatewayNode, settings: ClusterSettings, clock: Clock) -> None:
        self.engine, self.node, self.clock = engine, node, clock
        self.schedule = Schedule(interval=timedelta(seconds=settings.heartbeat_seconds), scope=Scope.NODE)

    def desired(self, db: Session, nudges: Sequence[Nudge]) -> None:
        return None

    def apply(self, desired: None, observed: None) -> None:
        with session_scope(self.engine) as db:
            service.beat(db, self.node, self.clock())


class DeadNodeSweep(Worker[None, None]):
    """Declares silent nodes dead and ends what they owned; at most one survivor declares each."""

    name = "nodes.dead_node_sweep"

    def __init__(self, engine: Engine, node: GatewayNode, settings: ClusterSettings, clock: Clock) -> None:
        self.engine, self.node, self.clock = engine, node, clock
        self.dead_after = timedelta(seconds=settings.dead_after_seconds)
        # Looking twice per beat keeps "dead after" + detection within dead_after + one beat.
        self.schedule = Schedule(interval=timedelta(seconds=settings.heartbeat_seconds / 2), scope=Scope.NODE)

    def desired(self, db: Session, nudges: Sequence[Nudge]) -> None:
        return None

    def apply(self, desired: None, observed: None) -> None:
        with session_scope(self.engine) as db:
            dead = service.declare_dead_nodes(db, self.node.name, self.clock(), self.dead_after)
        if dead:
            log.warning("declared dead and ended what they owned: %s", ", ".join(dead))


def cluster_workers(engine: Engine, node: GatewayNode, settings: ClusterSettings, clock: Clock) -> list[Worker]:  # type: ignore[type-arg]
    """The workers every node runs for the cluster, for the app's one runner."""
    return [NodeHeartbeat(engine, node, settings, clock), DeadNodeSweep(engine, node, settings, clock)]
