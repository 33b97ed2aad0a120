"""The nodes of a cluster and the schedule of its once-per-cluster work."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, DateTime
from sqlmodel import Field, SQLModel


class NodeState(StrEnum):
    LIVE = "live"
    """Beating; owns the seats, tunnels, views and legs that name it."""
    LEFT = "left"
    """Stopped cleanly: it ended its own work on the way out."""
    DEAD = "dead"
    """Missed its beats for ``cluster.dead_after_seconds``; a survivor ended everything it owned (``node_lost``)."""


class GatewayNode(SQLModel, table=True):
    """One ``sohogw serve`` process under its ``node_name``: the row other nodes watch to know it is alive.

    ``incarnation`` is new at every start, so a beat from a previous life (or from a second process started under the
    same name by mistake) is told apart from this one's.
    """

    __tablename__ = "gateway_node"

    name: str = Field(primary_key=True, max_length=255)
    incarnation: str = Field(max_length=32)
    state: NodeState = Field(max_length=8, index=True)
    started_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    last_beat_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, index=True))
    declared_dead_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    declared_dead_by: str | None = Field(default=None, max_length=255)


class WorkerSchedule(SQLModel, table=True):
    """When a cluster-scope worker's interval pass is next due anywhere, and who ran the last one.

    A node claims a pass by moving ``next_run_at`` on under a row lock (``FOR UPDATE SKIP LOCKED``): the claim commits
    before the pass runs, so two nodes can never both run one interval's pass.
    """

    __tablename__ = "worker_schedule"

    worker: str = Field(primary_key=True, max_length=128)
    next_run_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    last_run_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    last_run_node: str | None = Field(default=None, max_length=255)
    runs: int = 0
