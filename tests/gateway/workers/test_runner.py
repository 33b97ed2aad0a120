"""The worker contract through the one runner: nudges wake a worker, the interval repairs a lost nudge, a failing
pass is retried with back-off without stopping the others, and a cluster worker's interval pass asks the gate."""

import threading
import time
from collections.abc import Iterator, Sequence
from datetime import timedelta

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session

from gateway.db import session_scope
from gateway.events import nudge_after_commit
from gateway.workers import runner as runner_module
from gateway.workers.contract import Nudge, Schedule, Scope, Worker
from gateway.workers.runner import DROPPED, PASSES, WorkerRunner
from tests.support.workers import wait_for

TOPIC = "test.thing_changed"


class RecordingWorker(Worker[list[Nudge], None]):
    """Records every pass it applies; ``fail_next`` makes the next passes raise."""

    def __init__(self, name: str, schedule: Schedule) -> None:
        self.name, self.schedule = name, schedule
        self.applied: list[list[Nudge]] = []
        self.fail_next = 0
        self.applied_event = threading.Event()
        self.reads_database = False

    def desired(self, db: Session, nudges: Sequence[Nudge]) -> list[Nudge]:
        self.reads_database = db.exec(text("SELECT 1")).one()[0] == 1  # type: ignore[call-overload]
        return list(nudges)

    def apply(self, desired: list[Nudge], observed: None) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("the world refused")
        self.applied.append(desired)
        self.applied_event.set()


def failed_passes(worker: str) -> float:
    return float(
        sum(PASSES.labels(worker, trigger, "failed")._value.get() for trigger in ("interval", "nudge", "retry"))
    )


@pytest.fixture
def running() -> Iterator[list[WorkerRunner]]:
    runners: list[WorkerRunner] = []
    yield runners
    for runner in runners:
        runner.stop()


def test_a_committed_nudge_wakes_the_worker_with_its_payload(engine: Engine, running: list[WorkerRunner]) -> None:
    worker = RecordingWorker("test.nudged", Schedule(interval=timedelta(hours=1), topics=frozenset({TOPIC})))
    runner = WorkerRunner([worker], engine)
    running.append(runner)
    runner.start()
    assert wait_for(lambda: len(worker.applied) == 1)  # the first interval pass, at start
    with session_scope(engine) as db:
        nudge_after_commit(db, TOPIC, "session-1")
    assert wait_for(lambda: len(worker.applied) == 2)
    assert worker.applied[1] == [Nudge(TOPIC, "session-1")]
    assert worker.reads_database


def test_a_rolled_back_nudge_never_wakes_the_worker(engine: Engine, running: list[WorkerRunner]) -> None:
    worker = RecordingWorker("test.rolled_back", Schedule(interval=timedelta(hours=1), topics=frozenset({TOPIC})))
    runner = WorkerRunner([worker], engine)
    running.append(runner)
    runner.start()
    assert wait_for(lambda: len(worker.applied) == 1)
    with pytest.raises(RuntimeError), session_scope(engine) as db:
        nudge_after_commit(db, TOPIC, "never")
        raise RuntimeError("the request failed")
    time.sleep(0.3)
    assert len(worker.applied) == 1


def test_the_interval_repairs_what_a_lost_nudge_missed(engine: Engine, running: list[WorkerRunner]) -> None:
    worker = RecordingWorker("test.interval", Schedule(interval=timedelta(seconds=0.2), topics=frozenset({TOPIC})))
    runner = WorkerRunner([worker], engine)
    running.append(runner)
    runner.start()
    assert wait_for(lambda: len(worker.applied) >= 3, seconds=3)
    assert all(nudges == [] for nudges in worker.applied)  # interval passes cover everything: no narrowing


def test_a_failing_pass_is_retried_and_does_not_stop_the_others(engine: Engine, running: list[WorkerRunner]) -> None:
    failing = RecordingWorker("test.failing", Schedule(interval=timedelta(hours=1), topics=frozenset({TOPIC})))
    healthy = RecordingWorker("test.healthy", Schedule(interval=timedelta(hours=1), topics=frozenset({TOPIC})))
    failing.fail_next = 2
    failed_before = failed_passes("test.failing")
    runner = WorkerRunner([failing, healthy], engine)
    running.append(runner)
    runner.start()
    assert wait_for(lambda: len(healthy.applied) == 1)
    runner.nudge(TOPIC, "while-failing")
    assert wait_for(lambda: len(healthy.applied) == 2)
    # back-off 1 s then 2 s: the third attempt succeeds, and the nudge given during the failures is not lost
    assert wait_for(lambda: len(failing.applied) >= 1, seconds=6)
    assert failed_passes("test.failing") - failed_before == 2
    assert runner.status("test.failing").consecutive_failures == 0
    assert failing.applied[0] == []  # the failed interval pass is retried as a full pass, which covers the nudge


class HeldWorker(RecordingWorker):
    """Its first pass waits in ``apply`` until ``release`` is set: time for a nudge and the interval to fall due."""

    def __init__(self, name: str, schedule: Schedule) -> None:
        super().__init__(name, schedule)
        self.held, self.release = threading.Event(), threading.Event()

    def apply(self, desired: list[Nudge], observed: None) -> None:
        if not self.applied:
            self.held.set()
            self.release.wait(5)
        super().apply(desired, observed)


@pytest.mark.parametrize("covers", [True, False], ids=["interval covers nudges", "nudges carry the change"])
def test_a_nudge_that_falls_due_with_the_interval(engine: Engine, running: list[WorkerRunner], covers: bool) -> None:
    """A nudge that waits while the interval falls due meets a full pass (an empty list: everything). A worker whose
    nudges carry what its database cannot tell (which directory entries changed, an upload's rows) then gets the
    nudge in a pass of its own, or the change would be lost until the next change of the same kind."""
    worker = HeldWorker(
        "test.held",
        Schedule(interval=timedelta(seconds=0.3), topics=frozenset({TOPIC}), interval_covers_nudges=covers),
    )
    runner = WorkerRunner([worker], engine)
    running.append(runner)
    runner.start()
    assert worker.held.wait(5)  # the first pass is under way
    runner.nudge(TOPIC, "account-disabled")
    time.sleep(0.5)  # the interval falls due meanwhile
    worker.release.set()
    assert wait_for(lambda: len(worker.applied) >= 2)
    assert worker.applied[1] == []  # the interval pass, which does its own duties whatever waits
    if covers:
        time.sleep(0.2)
        assert [Nudge(TOPIC, "account-disabled")] not in worker.applied
    else:
        assert wait_for(lambda: [Nudge(TOPIC, "account-disabled")] in worker.applied[2:])


class PoisonedWorker(RecordingWorker):
    """A pass that carries the nudge "poison" always fails."""

    def apply(self, desired: list[Nudge], observed: None) -> None:
        if Nudge(TOPIC, "poison") in desired:
            raise RuntimeError("this nudge can never be done")
        super().apply(desired, observed)


def test_a_nudge_that_always_fails_is_dropped_and_blocks_nothing(
    engine: Engine, running: list[WorkerRunner], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its passes are retried NUDGE_ATTEMPTS times, then it is dropped and counted; the interval passes between go
    on, and a later nudge is done."""
    monkeypatch.setattr(runner_module, "FIRST_BACKOFF_SECONDS", 0.05)
    worker = PoisonedWorker(
        "test.poisoned",
        Schedule(interval=timedelta(seconds=0.3), topics=frozenset({TOPIC}), interval_covers_nudges=False),
    )
    dropped = DROPPED.labels("test.poisoned")._value.get()
    runner = WorkerRunner([worker], engine)
    running.append(runner)
    runner.start()
    assert wait_for(lambda: len(worker.applied) == 1)
    runner.nudge(TOPIC, "poison")
    assert wait_for(lambda: DROPPED.labels("test.poisoned")._value.get() == dropped + 1, seconds=10)
    runner.nudge(TOPIC, "later")
    assert wait_for(lambda: [Nudge(TOPIC, "later")] in worker.applied)
    assert [] in worker.applied[1:]  # interval passes went on meanwhile


def test_a_cluster_workers_interval_pass_runs_only_when_the_gate_grants_it(
    engine: Engine, running: list[WorkerRunner]
) -> None:
    class Gate:
        def __init__(self) -> None:
            self.asked = 0

        def claim(self, worker: str, interval: timedelta) -> bool:
            self.asked += 1
            return False

    gate = Gate()
    cluster = RecordingWorker(
        "test.cluster", Schedule(interval=timedelta(seconds=0.1), topics=frozenset({TOPIC}), scope=Scope.CLUSTER)
    )
    runner = WorkerRunner([cluster], engine, gate=gate)
    running.append(runner)
    runner.start()
    assert wait_for(lambda: gate.asked >= 3)
    assert cluster.applied == []
    runner.nudge(TOPIC, "local")  # a nudge is this node's business: it runs without asking
    assert wait_for(lambda: cluster.applied == [[Nudge(TOPIC, "local")]])


def test_worker_names_must_be_unique(engine: Engine) -> None:
    twin = Schedule(interval=timedelta(hours=1))
    with pytest.raises(ValueError, match="unique"):
        WorkerRunner([RecordingWorker("test.twin", twin), RecordingWorker("test.twin", twin)], engine)
