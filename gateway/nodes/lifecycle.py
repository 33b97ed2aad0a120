"""Start and stop this node's membership of the cluster, from the app's lifespan.

``join_cluster`` writes the node's row (refusing a second node on SQLite), and ``ClusterMember`` gives the app's one
worker runner the heartbeat and dead-node workers and its gate (the database, on PostgreSQL), and runs the listener
that brings the other nodes' nudges. Leaving marks the node as left, so no survivor declares it dead.
"""

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine

from gateway.clock import Clock
from gateway.db import is_postgres, session_scope
from gateway.events import publish
from gateway.nodes import service
from gateway.nodes.errors import SecondNodeOnSqlite
from gateway.nodes.gate import DatabaseClusterGate
from gateway.nodes.listener import NudgeListener
from gateway.nodes.models import GatewayNode
from gateway.nodes.settings import ClusterSettings
from gateway.nodes.workers import cluster_workers
from gateway.workers.contract import Worker
from gateway.workers.runner import ClusterGate, SingleNodeGate


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
    except SecondNodeOnSqlite as refused:
        with session_scope(engine) as db:
            service.audit_sqlite_refusal(db, name, refused)
        raise


def gate_for(engine: Engine, name: str, clock: Clock) -> ClusterGate:
    """The database gate on PostgreSQL; one node on SQLite runs every pass itself."""
    return DatabaseClusterGate(engine, name, clock) if is_postgres(engine) else SingleNodeGate()


class ClusterMember:
    """This node in the cluster, after ``join_cluster``: its ``workers`` and ``gate`` go to the app's runner;
    ``start`` listens for the other nodes' nudges; on the way out ``stop_listening``, then, with the runner stopped,
    ``leave``."""

    def __init__(self, engine: Engine, node: GatewayNode, settings: ClusterSettings, clock: Clock):
        self.engine, self.node, self.clock = engine, node, clock
        self.workers: list[Worker[Any, Any]] = cluster_workers(engine, node, settings, clock)
        self.gate = gate_for(engine, node.name, clock)
        self.listener = (
            NudgeListener(engine.url.render_as_string(hide_password=False), publish, clock)
            if is_postgres(engine)
            else None
        )

    def start(self) -> None:
        if self.listener is not None:
            self.listener.start()

    def stop_listening(self) -> None:
        if self.listener is not None:
            self.listener.stop()

    def leave(self) -> None:
        with session_scope(self.engine) as db:
            service.leave(db, self.node, self.clock())
