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
- portal sign-ins per minute through HAProxy (deploy/haproxy/haproxy.cfg) with two nodes, beside the same with one
  of them set to maintenance in HAProxy, in alternating slices, from 8 threads, each sign-in a fresh browser: once
  for supervisors (password, argon2), once for agents presenting their client certificate (TLS ends at HAProxy,
  which forwards it; the node checks the certificate and its WireGuard key binding, then the password). The throttle
  is raised out of the way (every sign-in comes from HAProxy's address).

Run as root in a network namespace of its own:
    ip netns add bench; ip netns exec bench ip link set lo up
    ip netns exec bench .venv/bin/python -m bench.bench_nodes [--rounds 3]
"""

import argparse
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from bench.interleave import alternate, throughput
from certs.authority import Authority, init_authority
from gateway.db import make_engine, session_scope
from gateway.events import Listener, listen, unlisten
from gateway.nodes.gate import DatabaseClusterGate
from gateway.nodes.listener import NudgeListener
from gateway.pki.service import Actor, issue_agent_certificate, publication_urls
from gateway.sessions.models import EndReason, HomeSession, SessionState
from gateway.sessions.service import SESSION_ENDED, end_session
from gateway.vpn.leases import lease_for_session
from gateway.vpn.settings import VpnSettings
from gateway.workers.contract import Nudge, Schedule, Scope, Worker
from gateway.workers.runner import ClusterGate, SingleNodeGate, WorkerRunner
from tests.gateway.nodes.cluster import balancer, cluster, haproxy_admin
from tests.gateway.vpn.agents import agent_session
from tests.support.portal import PROXY_SECRET, sign_in, write_builtin_directory
from tests.support.postgres import create_database, running_postgres
from tests.vpn.keys import key_pair

HEARTBEAT, DEAD_AFTER, SESSIONS = 0.5, 3.0, 50
CA_PASSPHRASE, PASSWORD, SUPERVISORS = "bench-nodes-ca", "Correct-Horse-42!", 8


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
    # Each round waits for its own session's ending: node b hears the same-node rounds' NOTIFYs too, and one of them
    # arriving after the next cross-node round began would end that round's wait at once.
    awaited: dict[str, str] = {}

    def hearing(kind: str) -> Listener:
        def hear(topic: str, payload: Any) -> None:
            if topic == SESSION_ENDED and payload == awaited.get(kind):
                heard[kind].set()

        return hear

    listener = NudgeListener(url, hearing("remote"), origin="bench-node-b")
    listener.start()
    while not listener.status.connected:
        time.sleep(0.01)
    ids = seed_tunnels(engine, "a", rounds * 2)
    local = hearing("local")
    listen(SESSION_ENDED, local)
    pending = iter(ids)

    def one(kind: str) -> float:
        heard[kind].clear()
        awaited[kind] = next(pending)
        with session_scope(engine) as db:
            session = db.get(HomeSession, awaited[kind])
            assert session is not None
            end_session(db, session, EndReason.ADMIN, actor="bench", now=datetime.now(UTC))
            committing = time.perf_counter()  # the clock starts as the commit does (at the block's end)
        if not heard[kind].wait(5):  # a nudge never heard is a broken path, not a latency of 5 s
            raise RuntimeError(f"the {kind} nudge was not heard within 5 s")
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


def agent_certificates(url: str, authority: Authority, people: Sequence[str], scratch: Path) -> list[tuple[str, str]]:
    """A certificate binding a WireGuard key for each agent (as enrolment issues it), as files for its browser."""
    engine, pem, files = make_engine(url), serialization.Encoding.PEM, []
    with session_scope(engine) as db:
        for login in people:
            issued = issue_agent_certificate(
                db, authority, upn=f"{login}@corp.example", account=login, wireguard_key=key_pair()[1], person_id=None,
                actor=Actor("bench"), now=datetime.now(UTC), lifetime=timedelta(days=1), urls=publication_urls("http://x"),
            )  # fmt: skip
            cert, key = scratch / f"{login}.crt", scratch / f"{login}.key"
            assert issued.key is not None  # issued here, so its key is at hand
            cert.write_bytes(issued.cert.public_bytes(pem))
            key.write_bytes(issued.key.private_bytes(pem, PrivateFormat.PKCS8, NoEncryption()))
            files.append((str(cert), str(key)))
    engine.dispose()
    return files


def logins_per_minute(admin_url: str, scratch: Path, seconds: float, agents: bool) -> dict[str, float]:
    """Sign-ins per minute through HAProxy: both nodes in the balance, and only node a (b in maintenance). Agents
    present their certificate (HAProxy forwards it; the node checks its binding and revocation status);
    supervisors sign in with the password alone."""
    url = fresh_database(admin_url)
    scratch.mkdir(parents=True)
    authority = init_authority(scratch / "ca", CA_PASSPHRASE, "Corp Example", datetime.now(UTC))
    role, group = ("agent", "SOHO-Agents") if agents else ("sup", "SOHO-Supervisors")
    people = [f"{role}{number}" for number in range(SUPERVISORS)]
    write_builtin_directory(
        scratch / "directory.json", dict.fromkeys(people, PASSWORD), {person: [group] for person in people}
    )
    certificates = agent_certificates(url, authority, people, scratch) if agents else []
    turn = iter(range(10**9))
    failures: list[int] = []

    def sign_in_once(base_url: str) -> None:
        person = next(turn) % SUPERVISORS
        cert = certificates[person] if agents else None
        with httpx.Client(base_url=base_url, verify=False, cert=cert, timeout=30) as browser:  # noqa: S501 - our own test CA
            answer = sign_in(browser, people[person], PASSWORD)
            if answer.status_code != 303:
                failures.append(answer.status_code)

    with cluster(url, scratch, HEARTBEAT, DEAD_AFTER) as nodes:
        nodes.behind_haproxy()
        nodes.settings.update(
            {
                "SOHOGW_PORTAL__THROTTLE_PER_SOURCE": "1000000",
                "SOHOGW_PORTAL__THROTTLE_PER_ACCOUNT": "1000000",
                "SOHOGW_CA__DIRECTORY": str(scratch / "ca"),
                "SOHOGW_CA__PASSPHRASE": CA_PASSPHRASE,
                "SOHOGW_DIRECTORY__KIND": "builtin",
                "SOHOGW_DIRECTORY__BUILTIN_FILE": str(scratch / "directory.json"),
            }
        )
        nodes.start("a")
        nodes.start("b")
        with balancer(nodes, scratch, PROXY_SECRET) as (base_url, admin):
            sign_in_once(base_url)  # warm: the first request of each node opens its pools
            totals: dict[str, list[tuple[int, float]]] = {"2 nodes": [], "1 node": []}

            def slice_of(label: str) -> tuple[int, float]:
                state = "ready" if label == "2 nodes" else "maint"
                haproxy_admin(admin, f"set server gateways/b state {state}")
                done, elapsed, _ = throughput(lambda: sign_in_once(base_url), 8, seconds / 4)
                return done, elapsed

            for label, slices in alternate({name: partial(slice_of, name) for name in totals}, 4).items():
                totals[label] = slices
    if failures:
        raise RuntimeError(f"{len(failures)} sign-ins failed: {sorted(set(failures))}")
    return {label: sum(d for d, _ in runs) / sum(e for _, e in runs) * 60 for label, runs in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="node deaths to measure")
    parser.add_argument("--nudges", type=int, default=100, help="nudges per side")
    parser.add_argument("--login-seconds", type=float, default=40, help="sign-in time per side")
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
        for agents, who in ((False, "supervisors (password)"), (True, "agents (certificate + password)")):
            rates = logins_per_minute(admin_url, Path(scratch) / f"logins-{who[:6]}", args.login_seconds, agents)
            print(
                f"portal sign-ins per minute through HAProxy, {who}: "
                f"2 nodes {rates['2 nodes']:.0f}, 1 node {rates['1 node']:.0f}"
            )


if __name__ == "__main__":
    main()
