"""Start and stop this node's membership of the cluster, from the app's lifespan.

``join_cluster`` writes the node's row (refusing a second node on SQLite), and ``ClusterMember`` runs the heartbeat
and dead-node workers under a runner whose gate is the database, and on PostgreSQL the listener that brings the other
nodes' nudges. A clean stop marks the node as left, so no survivor declares it dead.
"""

from datetime import timedelta

from sqlalchemy import Engine

from gateway.clock import Clock
from gateway.db import is_postgres, session_scope
from gateway.events import deliver_here
from gateway.nodes import service
from gateway.nodes.gate import DatabaseClusterGate
from gateway.nodes.listener import NudgeListener
from gateway.nodes.models import GatewayNode
from gateway.nodes.settings import ClusterSettings
from gateway.nodes.workers import cluster_workers
from gateway.workers.runner import ClusterGate, SingleNodeGate, WorkerRunner


def join_cluster(engine: Engine, name: str, settings: ClusterSettings, clock: Clock) -> GatewayNode:
    """This node's row, live; raises ``SecondNodeOnSqlite`` beside another live node on SQLite (audited)."""
    try:
        with session_scope(engine) as db:
            return service.join(
                db,
                name,
                clock(),
                dead_after=timedelta(seconds=settings.dead_after_seconds),
                shared_database=is_postgres(engine),
            )
    except service.SecondNodeOnSqlite as refused:
        with session_scope(engine) as db:
            service.audit_sqlite_refusal(db, name, refused)
        raise


def gate_for(engine: Engine, name: str, clock: Clock) -> ClusterGate:
    """The database gate on PostgreSQL; one node on SQLite runs every pass itself."""
    return DatabaseClusterGate(engine, name, clock) if is_postgres(engine) else SingleNodeGate()


class ClusterMember:
    """This node in the cluster: ``start`` after ``join_cluster``, ``stop`` on the way out."""

    def __init__(self, engine: Engine, node: GatewayNode, settings: ClusterSettings, clock: Clock):
        self.engine, self.node, self.clock = engine, node, clock
        self.runner = WorkerRunner(
            cluster_workers(engine, node, settings, clock), engine, clock, gate_for(engine, node.name, clock)
        )
        self.listener = (
            NudgeListener(engine.url.render_as_string(hide_password=False), deliver_here, clock)
            if is_postgres(engine)
            else None
        )

    def start(self) -> None:
        self.runner.start()
        if self.listener is not None:
            self.listener.start()

    def stop(self) -> None:
        if self.listener is not None:
            self.listener.stop()
        self.runner.stop()
        with session_scope(self.engine) as db:
            service.leave(db, self.node, self.clock())
