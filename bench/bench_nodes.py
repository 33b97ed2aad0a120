"""Several nodes on one PostgreSQL: how soon a dead node's sessions end, how fast a nudge crosses nodes, and how many
times a cluster worker's pass runs per interval — each beside a baseline measured in the same run.

- dead node → everything it owned ended: two real node processes (heartbeat 0.5 s, dead after 3 s), 50 sessions
  with tunnels on node a, ``kill -9`` of a's process group; seconds until the last of them is ended by b. Beside it
  the floor (the dead time) and the cost of ending the same 50 sessions in one transaction directly.
- cross-node nudge: ``end_session`` committed here, heard by a ``NudgeListener`` (node b) over LISTEN/NOTIFY; beside
  it the same commit's local after-commit delivery. (Node b's tunnel removal adds its reconcile pass:
  tests/gateway/nodes/test_cross_node_end_now.py holds the whole path under one second.)
- runs per interval: a cluster worker under two runners with the database gate; beside it two runners each with the
  single-node gate, and one runner alone.

Run as root in a network namespace of its own:
    ip netns add bench; ip netns exec bench ip link set lo up
    ip netns exec bench .venv/bin/python bench/bench_nodes.py [--rounds 3]
"""

import argparse
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from bench.interleave import alternate
from gateway.db import make_engine, session_scope
from gateway.events import listen, unlisten
from gateway.nodes.gate import DatabaseClusterGate
from gateway.nodes.listener import NudgeListener
from gateway.sessions.models import EndReason, HomeSession, SessionState
from gateway.sessions.service import SESSION_ENDED, end_session
from gateway.vpn.leases import lease_for_session
from gateway.vpn.settings import VpnSettings
from gateway.workers.contract import Nudge, Schedule, Scope, Worker
from gateway.workers.runner import ClusterGate, SingleNodeGate, WorkerRunner
from tests.gateway.nodes.cluster import cluster
from tests.gateway.vpn.agents import agent_session
from tests.support.postgres import create_database, running_postgres
from tests.vpn.keys import key_pair

HEARTBEAT, DEAD_AFTER, SESSIONS = 0.5, 3.0, 50


def fresh_database(admin_url: str) -> str:
    from gateway.migrate import upgrade

    url = create_database(admin_url, f"bench_{uuid.uuid4().hex[:10]}")
    upgrade(url)
    return url


def seed_tunnels(engine: Engine, node: str, count: int) -> list[str]:
    now = datetime.now(UTC)
    ids = []
    with session_scope(engine) as db:
        for number in range(count):
            session, _ = agent_session(
                db, f"{node}-agent-{number}-{uuid.uuid4().hex[:6]}", now, wireguard_key=key_pair()[1]
            )
            session.node = node
            lease_for_session(db, session, now, VpnSettings(), node)
            ids.append(session.id)
    return ids


def still_live(engine: Engine, ids: Sequence[str]) -> int:
    with Session(engine) as db:
        query = select(HomeSession.id).where(col(HomeSession.id).in_(ids), HomeSession.state != SessionState.ENDED)
        return len(db.exec(query).all())


def dead_node_round(admin_url: str, scratch: Path) -> float:
    url = fresh_database(admin_url)
    engine = make_engine(url)
    try:
        with cluster(url, scratch / uuid.uuid4().hex[:8], HEARTBEAT, DEAD_AFTER) as nodes:
            nodes.data_root.mkdir(parents=True)
            nodes.start("a")
            nodes.start("b")
            owned = seed_tunnels(engine, "a", SESSIONS)
            killed_at = time.monotonic()
            nodes.nodes["a"].kill_whole_tree()
            while still_live(engine, owned) and time.monotonic() < killed_at + DEAD_AFTER + 30:
                time.sleep(0.02)
            return time.monotonic() - killed_at
    finally:
        engine.dispose()


def direct_ending(admin_url: str) -> float:
    """The baseline work: the same number of sessions ended in one transaction, no node involved."""
    url = fresh_database(admin_url)
    engine = make_engine(url)
    owned = seed_tunnels(engine, "a", SESSIONS)
    started = time.monotonic()
    with session_scope(engine) as db:
        for session in db.exec(select(HomeSession).where(col(HomeSession.id).in_(owned))):
            end_session(db, session, EndReason.NODE_LOST, actor="bench", now=datetime.now(UTC))
    elapsed = time.monotonic() - started
    engine.dispose()
    return elapsed


def nudge_latencies(admin_url: str, rounds: int) -> dict[str, list[float]]:
    url = fresh_database(admin_url)
    engine = make_engine(url)
    heard: dict[str, threading.Event] = {"remote": threading.Event(), "local": threading.Event()}
    listener = NudgeListener(url, lambda topic, payload: heard["remote"].set(), origin="bench-node-b")
    listener.start()
    while not listener.status.connected:
        time.sleep(0.01)
    ids = seed_tunnels(engine, "a", rounds * 2)

    def local(topic: str, payload: Any) -> None:
        heard["local"].set()

    listen(SESSION_ENDED, local)
    pending = iter(ids)

    def one(kind: str) -> float:
        heard[kind].clear()
        with session_scope(engine) as db:
            session = db.get(HomeSession, next(pending))
            assert session is not None
            end_session(db, session, EndReason.ADMIN, actor="bench", now=datetime.now(UTC))
            committing = time.perf_counter()  # the clock starts as the commit does (at the block's end)
        heard[kind].wait(5)
        return time.perf_counter() - committing

    try:
        return alternate({"cross-node": lambda: one("remote"), "same node": lambda: one("local")}, rounds)
    finally:
        unlisten(SESSION_ENDED, local)
        listener.stop()
        engine.dispose()


class Tick(Worker[None, None]):
    name = "bench.tick"

    def __init__(self, interval: float, runs: list[float]) -> None:
        self.schedule = Schedule(interval=timedelta(seconds=interval), scope=Scope.CLUSTER)
        self.runs = runs

    def desired(self, db: Session, nudges: Sequence[Nudge]) -> None:
        self.runs.append(time.monotonic())

    def apply(self, desired: None, observed: None) -> None:
        return None


def runs_per_interval(admin_url: str, nodes: int, gated: bool, interval: float, seconds: float) -> float:
    url = fresh_database(admin_url)
    engine = make_engine(url)
    gates: list[ClusterGate] = [
        DatabaseClusterGate(engine, f"node-{number}") if gated else SingleNodeGate() for number in range(nodes)
    ]
    runs: list[float] = []
    runners = [WorkerRunner([Tick(interval, runs)], engine, gate=gate) for gate in gates]
    for runner in runners:
        runner.start()
        time.sleep(interval / 3)
    started = time.monotonic()
    time.sleep(seconds)
    counted = len([run for run in runs if run >= started])
    for runner in runners:
        runner.stop()
    engine.dispose()
    return counted / (seconds / interval)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="node deaths to measure")
    parser.add_argument("--nudges", type=int, default=100, help="nudges per side")
    args = parser.parse_args()
    with running_postgres() as admin_url, tempfile.TemporaryDirectory() as scratch:
        deaths = alternate(
            {
                "dead node": lambda: dead_node_round(admin_url, Path(scratch)),
                "direct": lambda: direct_ending(admin_url),
            },
            args.rounds,
        )
        dead, direct = sorted(deaths["dead node"]), deaths["direct"]
        print(
            f"dead node -> its {SESSIONS} sessions ended: p50 {statistics.median(dead):.2f} s, max {max(dead):.2f} s "
            f"(dead time {DEAD_AFTER:.1f} s, beat {HEARTBEAT} s; ending them directly takes "
            f"{statistics.median(direct):.2f} s)"
        )
        latencies = nudge_latencies(admin_url, args.nudges)
        for name, values in latencies.items():
            values.sort()
            p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
            median_ms, p99_ms = statistics.median(values) * 1000, p99 * 1000
            print(f"nudge {name:>10} (from the commit's start): p50 {median_ms:.1f} ms, p99 {p99_ms:.1f} ms")
        interval, seconds = 0.2, 10.0
        print("cluster worker runs per interval:")
        for label, nodes, gated in (
            ("2 nodes, database gate", 2, True),
            ("2 nodes, no gate", 2, False),
            ("1 node", 1, False),
        ):
            print(f"  {label:<24} {runs_per_interval(admin_url, nodes, gated, interval, seconds):.2f}")


if __name__ == "__main__":
    main()
