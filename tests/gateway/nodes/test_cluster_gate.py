"""Once-per-cluster work on a real PostgreSQL: two nodes' runners share a cluster-scope worker, and its interval pass
runs once per interval, never twice, and on without a gap when one node stops."""

import itertools
import time
from collections.abc import Sequence
from datetime import timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from gateway.audit.models import AuditEvent
from gateway.audit.service import record
from gateway.db import session_scope
from gateway.nodes.gate import DatabaseClusterGate
from gateway.nodes.models import WorkerSchedule
from gateway.workers.contract import Nudge, Schedule, Scope, Worker
from gateway.workers.runner import ClusterGate, SingleNodeGate, WorkerRunner

INTERVAL = 0.4


class TickWorker(Worker[None, None]):
    """Writes one audit row per pass, naming the node that ran it: the rows are what the test counts."""

    name = "test.cluster_tick"
    schedule = Schedule(interval=timedelta(seconds=INTERVAL), scope=Scope.CLUSTER)

    def __init__(self, engine: Engine, node: str, runs: list[tuple[float, str]]) -> None:
        self.engine, self.node, self.runs = engine, node, runs

    def desired(self, db: Session, nudges: Sequence[Nudge]) -> None:
        self.runs.append((time.monotonic(), self.node))  # just after the claim committed

    def apply(self, desired: None, observed: None) -> None:
        with session_scope(self.engine) as db:
            record(db, actor=f"node:{self.node}", action="test.tick", outcome="ran")


def _run_two_nodes(
    engine: Engine, gates: dict[str, ClusterGate], seconds: float, stop_a_after: float
) -> list[tuple[float, str]]:
    runs: list[tuple[float, str]] = []
    runners = {node: WorkerRunner([TickWorker(engine, node, runs)], engine, gate=gate) for node, gate in gates.items()}
    runners["a"].start()
    time.sleep(INTERVAL / 3)  # the nodes' timers out of phase, as on two hosts
    runners["b"].start()
    time.sleep(stop_a_after)
    runners["a"].stop()
    time.sleep(seconds - stop_a_after)
    runners["b"].stop()
    return sorted(runs)


@pytest.mark.postgres
def test_a_cluster_workers_interval_pass_runs_once_per_interval_across_two_nodes(pg_engine: Engine) -> None:
    gates: dict[str, ClusterGate] = {node: DatabaseClusterGate(pg_engine, node) for node in ("a", "b")}
    runs = _run_two_nodes(pg_engine, gates, seconds=4.0, stop_a_after=2.0)
    gaps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(runs)]
    # Never twice in one interval, never an interval missed. A loaded machine delays a pass by some 100 ms, hence
    # the room around each gap; when a stops just before its timer, b's timer (later in each interval) takes the
    # next pass, so that one gap may come close to two intervals.
    assert min(gaps) > INTERVAL * 0.5, runs
    assert sorted(gaps)[-2] < INTERVAL * 1.5 and max(gaps) < INTERVAL * 2, gaps
    assert abs(len(runs) - (1 + round((runs[-1][0] - runs[0][0]) / INTERVAL))) <= 1, gaps
    # the node whose timer comes first in each interval takes its pass; once a stops, b takes them without a gap
    assert runs[0][1] == "a" and {node for _, node in runs[-3:]} == {"b"}
    with Session(pg_engine) as db:
        rows = db.exec(select(AuditEvent).where(AuditEvent.action == "test.tick")).all()
        schedule = db.get(WorkerSchedule, TickWorker.name)
        assert schedule is not None and len(rows) == len(runs) == schedule.runs


@pytest.mark.postgres
def test_without_the_gate_both_nodes_run_every_interval(pg_engine: Engine) -> None:
    """The control: the same two runners, each alone in its own mind, run the pass about twice per interval."""
    gates: dict[str, ClusterGate] = {node: SingleNodeGate() for node in ("a", "b")}
    runs = _run_two_nodes(pg_engine, gates, seconds=2.0, stop_a_after=1.9)
    assert len(runs) > 1.6 * (2.0 / INTERVAL)
