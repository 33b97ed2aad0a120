"""The one worker contract.

A worker makes the world match the database. Each pass has three steps, so that no outside system is ever called
while a transaction holds locks and nothing is applied that may still roll back:

1. ``desired(db, nudges)`` reads what should be, inside one short transaction the runner opens and commits;
2. ``observe()`` reads what is (the WireGuard interface, the seat processes, the PBX's live calls); a worker whose
   world is the database itself observes nothing;
3. ``apply(desired, observed)`` makes the difference true, outside any transaction. When it must write back (an
   outcome, a lease made active), it opens its own unit of work with ``gateway.db.session_scope``.

What wakes it is declared, not wired: the nudge ``topics`` (published after a commit by
``gateway.events.nudge_after_commit``) and the safety-net ``interval``, which repairs whatever a lost nudge missed.
``scope`` says where it runs when several nodes share the database: ``NODE`` workers run on every node for that
node's own world (its peers, its seats); ``CLUSTER`` workers' interval passes run once per interval across the
cluster (the runner asks its ``ClusterGate``). Listeners never do work in the committing thread: a nudge only wakes
the worker's own thread.
"""

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any, Generic, TypeVar

from sqlmodel import Session

Desired = TypeVar("Desired")
Observed = TypeVar("Observed")


class Scope(StrEnum):
    NODE = "node"
    """Runs on every node, for what that node owns."""
    CLUSTER = "cluster"
    """Its interval passes run once per interval across all nodes."""


@dataclass(frozen=True)
class Nudge:
    """A change a worker should act on now: its topic and what the publisher said (a session id, a lease id…)."""

    topic: str
    payload: Any = None


@dataclass(frozen=True)
class Schedule:
    """When a worker runs: at once on any of ``topics``, and every ``interval`` whatever happens."""

    interval: timedelta
    topics: frozenset[str] = field(default_factory=frozenset)
    scope: Scope = Scope.NODE
    first_pass_delay: timedelta = timedelta(0)
    """How long after start the first pass runs (0: at once)."""
    interval_covers_nudges: bool = True
    """Whether an interval pass does all a pending nudge asked, so the runner may drop the nudge. False for a worker
    whose nudges carry what its database cannot tell it (which directory entries changed): the nudges waiting when
    the interval falls due then get a pass of their own right after the interval pass."""


class Worker(ABC, Generic[Desired, Observed]):
    """One kind of background work. Subclasses set ``name`` and ``schedule`` and implement the three steps."""

    name: str
    """Stable and unique, e.g. ``vpn.peers``: the thread's name, the metrics label, the cluster schedule's key."""
    schedule: Schedule

    @abstractmethod
    def desired(self, db: Session, nudges: Sequence[Nudge]) -> Desired:
        """What should be, read in the runner's transaction. ``nudges`` are the changes since the last pass (empty
        on an interval pass): a worker may narrow its pass to them, but an empty list means 'everything'."""

    def observe(self) -> Observed | None:
        """What is, outside any transaction. The default observes nothing (the database is the whole world)."""
        return None

    @abstractmethod
    def apply(self, desired: Desired, observed: Observed | None) -> None:
        """Make the difference true, outside any transaction. Raising retries the pass with back-off."""

    def stop(self) -> None:
        """Release what the worker holds (connections, threads of an outside client); called once at shutdown."""
