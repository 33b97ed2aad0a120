"""The ``seats.pool`` worker through the one runner, with real Xvfb/x11vnc seats: an ended lease's nudge stops its
seat, the interval recycles a seat whose lease ended without a nudge, and a failing pass is retried without stopping
the other workers. On SQLite and PostgreSQL."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from desktop_broker.pool import SeatKind, SeatPool
from desktop_broker.x11 import SeatProcess, SeatSpec, start_seat
from gateway.db import session_scope
from gateway.seats import service
from gateway.seats.broker import SeatBroker
from gateway.seats.models import SeatEndReason, SeatLease, SeatLeaseState
from gateway.seats.settings import SeatSettings
from gateway.seats.workers import POOL_SECONDS, SeatPoolWorker
from gateway.supervision.alerts import RecordingStorageAlarm
from gateway.workers.contract import Schedule
from gateway.workers.runner import WorkerRunner
from policy import DisplayRules
from tests.desktop_broker.x11_fixtures import CONSOLE_ARGV
from tests.gateway.seats.conftest import seat_root
from tests.gateway.supervision.conftest import add_session
from tests.gateway.workers.test_runner import RecordingWorker, failed_passes
from tests.support.workers import wait_for

pytestmark = pytest.mark.e2e
CONSOLE = SeatKind("customer-console", tuple(CONSOLE_ARGV), DisplayRules())
NODE = "node-a"


class FlakyPool(SeatPool):
    """A real pool whose next ``fail_next`` releases raise (a seat that will not stop)."""

    fail_next = 0

    def release(self, seat_id: str) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise OSError("the seat's processes would not stop")
        super().release(seat_id)


@dataclass
class Node:
    engine: Engine
    pool: FlakyPool
    broker: SeatBroker
    clock: "Later"


class Later:
    """Real time, moved on past the launch token's lifetime, so a held seat counts as settled at once."""

    def __call__(self) -> datetime:
        return datetime.now(UTC) + timedelta(minutes=5)


@pytest.fixture
def node(engine: Engine) -> Iterator[Node]:
    with seat_root() as root:

        def start(spec: SeatSpec) -> SeatProcess:
            return start_seat(spec, homes_root=root / "homes", runtime_root=root / "run")

        clock = Later()
        pool = FlakyPool(start=start, node_cap=3, warm_per_kind=0)
        settings = SeatSettings(warm_per_app=0, homes_root=root / "homes", runtime_root=root / "run")
        broker = SeatBroker(engine, settings, NODE, clock, pool, RecordingStorageAlarm())
        try:
            yield Node(engine, pool, broker, clock)
        finally:
            broker.stop()


def _leased_seat(node: Node, login: str) -> SeatLease:
    """A real seat assigned to a lease of a live session, as a launch leaves it."""
    now = datetime.now(UTC)
    with session_scope(node.engine) as db:
        session = add_session(db, login, created_at=now)
        lease = SeatLease(
            id=f"lease-{login}", session_id=session.id, person_id=session.person_id, login=login,
            app_id="customer-console", backend="x11", node=NODE, seat_id="", state=SeatLeaseState.ASSIGNED,
            idle_timeout_seconds=900, max_session_seconds=28800, started_at=now, last_activity_at=now,
        )  # fmt: skip
        seat = node.pool.assign(CONSOLE, holder=lease.id, label=login)
        lease.seat_id = seat.seat_id
        db.add(lease)
        return lease


def _end(node: Node, lease: SeatLease) -> None:
    with session_scope(node.engine) as db:
        service.end_seat(db, db.get_one(SeatLease, lease.id), SeatEndReason.SESSION_ENDED, datetime.now(UTC))


def test_an_ended_lease_stops_its_seat_at_once_and_a_lost_nudge_is_repaired_by_the_interval(node: Node) -> None:
    worker = SeatPoolWorker(node.broker)
    with_nudge, without = _leased_seat(node, "agent1"), _leased_seat(node, "agent2")
    runner = WorkerRunner([worker], node.engine, node.clock)
    runner.start()
    try:
        assert wait_for(lambda: runner.status(worker.name).last_success_at is not None)  # the first pass
        _end(node, with_nudge)
        assert wait_for(lambda: node.pool.get(with_nudge.seat_id) is None, seconds=POOL_SECONDS - 0.5)
        assert node.pool.get(without.seat_id) is not None  # the positive control: only the nudged seat went
        with session_scope(node.engine) as db:  # ended as a node that died before its nudge would leave it
            lease = db.get_one(SeatLease, without.id)
            lease.state = SeatLeaseState.ENDED
            db.add(lease)
        assert wait_for(lambda: node.pool.get(without.seat_id) is None, seconds=3 * POOL_SECONDS)
    finally:
        runner.stop()


def test_a_seat_that_will_not_stop_is_retried_and_the_other_workers_go_on(node: Node) -> None:
    worker = SeatPoolWorker(node.broker)
    other = RecordingWorker(
        "test.beside_seats", Schedule(interval=timedelta(hours=1), topics=frozenset({service.SEAT_ENDED}))
    )
    lease = _leased_seat(node, "agent1")
    failed_before = failed_passes(worker.name)
    runner = WorkerRunner([worker, other], node.engine, node.clock)
    runner.start()
    try:
        assert wait_for(lambda: runner.status(worker.name).last_success_at is not None)
        node.pool.fail_next = 1
        _end(node, lease)
        assert wait_for(lambda: len(other.applied) >= 2)  # the other worker had its nudged pass meanwhile
        assert wait_for(lambda: node.pool.get(lease.seat_id) is None, seconds=10)  # the retry stopped it
        assert wait_for(lambda: runner.status(worker.name).consecutive_failures == 0)
        assert failed_passes(worker.name) - failed_before == 1
    finally:
        runner.stop()
