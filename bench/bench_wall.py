"""The supervisors' wall with 1,000 seats: update latency while seats change state, CPU per tick, bytes sent.

The wall computes one snapshot per tick for all viewers and sends the same diff to each (``WallHub``). The baseline,
run in the same process on the same database, is what a naive stream does: every viewer's connection computes and
sends its own full snapshot each tick.

Run: .venv/bin/python -m bench.bench_wall [--seats 1000] [--viewers 20] [--seconds 10] [--rate 50]
"""

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from gateway.clock import utcnow
from gateway.db import make_engine, session_scope
from gateway.migrate import upgrade
from gateway.sessions.models import HomeSession, SessionState
from gateway.sessions.service import open_session
from gateway.supervision.models import WorkStatus
from gateway.supervision.settings import SupervisionSettings
from gateway.supervision.state import set_work_state
from gateway.supervision.wall import WallHub, compute_view, sse, summary
from gateway.vpn.models import LeaseState, TunnelLease
from gateway.workers.runner import WorkerRunner
from policy import SupervisedTeams

EVERY_TEAM = SupervisedTeams(True, frozenset(), "bench: every team")
SETTINGS = SupervisionSettings(wall_tick_seconds=1.0, team_groups=[f"Team-{n}" for n in range(12)])
STATES = [WorkStatus.READY, WorkStatus.ON_CALL, WorkStatus.WRAP_UP]


def seed(engine: Engine, seats: int) -> list[str]:
    now = utcnow() - timedelta(hours=1)
    ids = []
    with session_scope(engine) as db:
        for number in range(seats):
            login = f"agent{number:04d}"
            session = HomeSession(
                id="",
                token_sha256="",
                csrf_token="",
                state=SessionState.ACTIVE,
                person_id=f"bench:{login}",
                login=login,
                user_dn=f"cn={login}",
                display_name=login,
                roles="agent",
                groups=json.dumps(["SOHO-Agents", f"Team-{number % 12}"]),
                policy_groups=json.dumps(["SOHO-Agents", f"Team-{number % 12}"]),
                source_ip="198.51.100.7",
                created_at=now,
                last_seen_at=now,
                last_checked_at=now,
                idle_timeout_seconds=3600,
                expires_at=now + timedelta(hours=12),
            )
            open_session(db, session)
            db.add(
                TunnelLease(
                    session_id=session.id,
                    person_id=session.person_id,
                    login=login,
                    public_key=f"key{number}",
                    ipv4=f"10.99.{number // 250}.{number % 250 + 2}",
                    ipv6=f"fd00::{number + 2:x}",
                    state=LeaseState.DESIRED,
                    created_at=now,
                    latest_handshake_at=utcnow(),
                )
            )
            set_work_state(db, session, WorkStatus.READY, "", source="platform", now=now)
            ids.append(session.id)
    return ids


def cpu_per_tick(engine: Engine, viewers: int, ticks: int = 10) -> tuple[float, float, int, int]:
    """CPU seconds per tick: the hub (one compute, one diff, one encoding) and the baseline (one full per viewer)."""
    previous = compute_view(engine, utcnow(), SETTINGS).rows
    started = time.process_time()
    diff_bytes = 0
    for _ in range(ticks):
        rows = compute_view(engine, utcnow(), SETTINGS).rows
        changed = [row for key, row in rows.items() if previous.get(key) != row]
        diff_bytes = len(sse("diff", {"upsert": changed, "remove": [], "summary": summary(rows)}))
        previous = rows
    hub = (time.process_time() - started) / ticks
    started = time.process_time()
    full_bytes = 0
    for _ in range(max(1, ticks // 5)):
        for _viewer in range(viewers):
            rows = compute_view(engine, utcnow(), SETTINGS).rows
            full_bytes = len(sse("snapshot", {"rows": list(rows.values()), "summary": summary(rows)}))
    baseline = (time.process_time() - started) / max(1, ticks // 5)
    return hub, baseline, diff_bytes, full_bytes


async def latency(engine: Engine, ids: list[str], viewers: int, seconds: float, rate: float) -> dict[str, float]:
    """Seats change state at ``rate`` per second in another thread; time from commit to every viewer's diff."""
    hub = WallHub(engine, SETTINGS, utcnow)
    runner = WorkerRunner([hub], engine)  # as the app runs it
    runner.start()
    queues = [(await hub.subscribe(EVERY_TEAM))[0] for _ in range(viewers)]
    committed: dict[str, float] = {}
    delays: list[float] = []
    stop = threading.Event()

    made = [0]
    sizes: list[int] = []

    def change_states() -> None:
        chooser = random.Random(7)
        due = time.monotonic()
        while not stop.is_set():
            session_id = chooser.choice(ids)
            with session_scope(engine) as db:
                session = db.get(HomeSession, session_id)
                assert session is not None
                set_work_state(db, session, chooser.choice(STATES), "", source="platform", now=utcnow())
                committed[session_id] = time.monotonic()  # the nudge is delivered in the commit below
            made[0] += 1
            due += 1 / rate
            time.sleep(max(0.0, due - time.monotonic()))

    async def watch(queue: asyncio.Queue[str | None], measure: bool) -> None:
        while not stop.is_set():
            try:
                message = await asyncio.wait_for(queue.get(), timeout=0.5)
            except TimeoutError:
                continue
            if measure and message:
                arrived = time.monotonic()
                sizes.append(len(message))
                for row in json.loads(message.split("data: ", 1)[1])["upsert"]:
                    if (made := committed.pop(row["session_id"], None)) is not None:
                        delays.append(arrived - made)

    changer = threading.Thread(target=change_states)
    watchers = [asyncio.create_task(watch(queue, index == 0)) for index, queue in enumerate(queues)]
    cpu_started = time.process_time()
    changer.start()
    await asyncio.sleep(seconds)
    stop.set()
    changer.join()
    await asyncio.gather(*watchers)
    cpu = time.process_time() - cpu_started
    for queue in queues:
        hub.unsubscribe(queue)
    runner.stop()
    delays.sort()
    return {
        "changes": made[0],
        "seen": len(delays),
        "diffs": len(sizes),
        "diff_bytes": statistics.mean(sizes),
        "p50_ms": statistics.median(delays) * 1000,
        "p95_ms": delays[int(len(delays) * 0.95)] * 1000,
        "max_ms": delays[-1] * 1000,
        "cpu_share": cpu / seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seats", type=int, default=1000)
    parser.add_argument("--viewers", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=50.0, help="state changes per second")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{Path(directory) / 'wall.db'}"
        upgrade(url)
        engine = make_engine(url)
        try:
            ids = seed(engine, args.seats)
            hub, baseline, _idle_diff, full_bytes = cpu_per_tick(engine, args.viewers)
            per_thousand_ms = hub / args.seats * 1000 * 1000
            print(f"seats {args.seats}, viewers {args.viewers} (SQLite, {datetime.now(UTC):%Y-%m-%d})")
            print(f"CPU per tick, wall hub for all viewers: {hub * 1000:.1f} ms ({per_thousand_ms:.1f} ms per 1,000)")
            print(f"CPU per tick, baseline (full snapshot per viewer): {baseline * 1000:.1f} ms, {baseline / hub:.1f}x")
            result = asyncio.run(latency(engine, ids, args.viewers, args.seconds, args.rate))
            print(
                f"update latency, {result['changes']:.0f} changes at {args.rate:g}/s over {args.seconds:g} s "
                f"({result['seen']:.0f} measured, {result['diffs']:.0f} diffs): p50 {result['p50_ms']:.0f} ms, "
                f"p95 {result['p95_ms']:.0f} ms, max {result['max_ms']:.0f} ms; "
                f"process CPU {result['cpu_share'] * 100:.0f} % of one core"
            )
            ratio = full_bytes / result["diff_bytes"]
            print(f"bytes per viewer per update: diff {result['diff_bytes']:.0f}, full {full_bytes}, {ratio:.0f}x less")
        finally:
            engine.dispose()


if __name__ == "__main__":
    main()
