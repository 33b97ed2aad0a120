"""One way to start, nudge and stop every worker: a thread per worker, woken by its nudge topics or its interval.

A pass that raises is logged, counted (``sohogw_worker_passes_total{outcome="failed"}``) and retried after a back-off
that doubles from one second up to the worker's interval; the nudges it was given are kept for the retry, until
``NUDGE_ATTEMPTS`` passes that carried them failed. An interval pass is given no nudges (it does everything); for a
worker whose schedule says its interval does not cover them, the nudges waiting then get their own pass right after.
One worker's failure never stops another: each has its own thread, and the loop itself never dies.
"""

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy import Engine

from gateway.clock import Clock, utcnow
from gateway.db import session_scope
from gateway.events import listen, unlisten
from gateway.workers.contract import Nudge, Scope, Worker

log = logging.getLogger(__name__)

WORKER_REGISTRY = CollectorRegistry()
PASSES = Counter(
    "sohogw_worker_passes", "Worker passes by outcome", ["worker", "trigger", "outcome"], registry=WORKER_REGISTRY
)
PASS_SECONDS = Histogram(
    "sohogw_worker_pass_seconds", "Time one worker pass took", ["worker"], registry=WORKER_REGISTRY
)
FAILING = Gauge(
    "sohogw_worker_consecutive_failures", "Passes failed in a row (0: healthy)", ["worker"], registry=WORKER_REGISTRY
)
DROPPED = Counter(
    "sohogw_worker_dropped_nudges",
    "Nudges given up after NUDGE_ATTEMPTS failed passes",
    ["worker"],
    registry=WORKER_REGISTRY,
)
FIRST_BACKOFF_SECONDS = 1.0
NUDGE_ATTEMPTS = 5
"""Failed passes a nudge rides before it is dropped (back-off 1 + 2 + 4 + 8 s between them)."""


class ClusterGate(Protocol):
    """Decides whether this node runs a cluster-scope worker's interval pass now (once per interval across nodes)."""

    def claim(self, worker: str, interval: timedelta) -> bool: ...


class SingleNodeGate:
    """One node alone: every interval pass is this node's."""

    def claim(self, worker: str, interval: timedelta) -> bool:
        return True


@dataclass
class WorkerStatus:
    """What an operator (``/healthz``, the VPN page) may ask of a worker: when it last succeeded and why it fails."""

    last_success_at: datetime | None = None
    last_error: str | None = None
    consecutive_failures: int = 0


@dataclass
class _Slot:
    worker: Worker[Any, Any]
    wake: threading.Event = field(default_factory=threading.Event)
    pending: list[Nudge] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    status: WorkerStatus = field(default_factory=WorkerStatus)
    thread: threading.Thread | None = None
    nudge_failures: int = 0
    """Nudge passes failed in a row (``NUDGE_ATTEMPTS``)."""

    def listener(self, topic: str, payload: Any) -> None:
        """Runs in the committing thread: it only records the nudge and wakes the worker."""
        with self.lock:
            self.pending.append(Nudge(topic, payload))
        self.wake.set()

    def take(self) -> list[Nudge]:
        with self.lock:
            nudges, self.pending = self.pending, []
        self.wake.clear()
        return nudges

    def give_back(self, nudges: Sequence[Nudge]) -> None:
        with self.lock:
            self.pending[:0] = nudges


class WorkerRunner:
    """Runs workers: ``start`` once, ``nudge`` from anywhere (tests, a cross-node transport), ``stop`` once."""

    def __init__(
        self,
        workers: Sequence[Worker[Any, Any]],
        engine: Engine,
        clock: Clock = utcnow,
        gate: ClusterGate | None = None,
    ) -> None:
        names = [worker.name for worker in workers]
        if len(set(names)) != len(names):
            raise ValueError(f"worker names must be unique: {sorted(names)}")
        self.engine, self.clock = engine, clock
        self.gate: ClusterGate = gate or SingleNodeGate()
        self._slots = {worker.name: _Slot(worker) for worker in workers}
        self._stopping = threading.Event()

    @property
    def workers(self) -> list[Worker[Any, Any]]:
        return [slot.worker for slot in self._slots.values()]

    def status(self, name: str) -> WorkerStatus:
        return self._slots[name].status

    def start(self) -> None:
        for slot in self._slots.values():
            for topic in slot.worker.schedule.topics:
                listen(topic, slot.listener)
            slot.thread = threading.Thread(target=self._loop, args=(slot,), name=f"worker:{slot.worker.name}")
            slot.thread.daemon = True
            slot.thread.start()

    def nudge(self, topic: str, payload: Any = None) -> None:
        """Wake every worker that listens to ``topic``, as a committed nudge would."""
        for slot in self._slots.values():
            if topic in slot.worker.schedule.topics:
                slot.listener(topic, payload)

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        for slot in self._slots.values():
            for topic in slot.worker.schedule.topics:
                unlisten(topic, slot.listener)
            slot.wake.set()
        deadline = time.monotonic() + timeout
        for slot in self._slots.values():
            if slot.thread is not None:
                slot.thread.join(max(0.0, deadline - time.monotonic()))
            try:
                slot.worker.stop()
            except Exception:
                log.exception("worker %s failed to stop cleanly", slot.worker.name)

    def _loop(self, slot: _Slot) -> None:
        schedule = slot.worker.schedule
        interval = schedule.interval.total_seconds()
        next_interval_pass = time.monotonic() + schedule.first_pass_delay.total_seconds()
        retry_at: float | None = None
        full_pass_owed = False  # a failed interval pass is retried as a full pass
        backoff = FIRST_BACKOFF_SECONDS
        while not self._stopping.is_set():
            wait_until = next_interval_pass if retry_at is None else min(retry_at, next_interval_pass)
            if time.monotonic() < wait_until:
                slot.wake.wait(wait_until - time.monotonic())
                if self._stopping.is_set():
                    return
                if retry_at is not None and time.monotonic() < retry_at:
                    continue  # a nudge during back-off waits for the retry; it stays in ``pending``
            now = time.monotonic()
            interval_due = now >= next_interval_pass
            retrying = retry_at is not None
            nudges = slot.take()
            if not (nudges or interval_due or retrying):
                continue
            if interval_due:
                next_interval_pass = now + interval
                if schedule.scope is Scope.CLUSTER and not (nudges or full_pass_owed) and not self._claim(slot):
                    continue
            full = interval_due or full_pass_owed
            trigger = "retry" if retrying else "interval" if interval_due else "nudge"
            if self._run_pass(slot, [] if full else nudges, trigger):
                retry_at, full_pass_owed, backoff = None, False, FIRST_BACKOFF_SECONDS
                if full and nudges and not schedule.interval_covers_nudges:
                    slot.give_back(nudges)  # what the full pass could not rebuild gets its own pass, next
                    slot.wake.set()
                elif not full:
                    slot.nudge_failures = 0
            else:
                self._keep_for_retry(slot, nudges, full)
                full_pass_owed = full
                retry_at = time.monotonic() + backoff
                backoff = min(backoff * 2, interval)

    def _keep_for_retry(self, slot: _Slot, nudges: list[Nudge], full: bool) -> None:
        """Give a failed pass's nudges back for the retry, unless the passes that carried them failed
        ``NUDGE_ATTEMPTS`` times: then they are dropped, logged, and left to the interval (a nudge that always fails
        must not block the worker, nor replay what its batch already did on every retry)."""
        if not full and nudges:
            slot.nudge_failures += 1
            if slot.nudge_failures >= NUDGE_ATTEMPTS:
                slot.nudge_failures = 0
                DROPPED.labels(slot.worker.name).inc(len(nudges))
                log.error(
                    "worker %s: dropped %d nudge(s) after %d failed passes: %s",
                    slot.worker.name, len(nudges), NUDGE_ATTEMPTS, nudges,
                )  # fmt: skip
                return
        slot.give_back(nudges)

    def _claim(self, slot: _Slot) -> bool:
        try:
            return self.gate.claim(slot.worker.name, slot.worker.schedule.interval)
        except Exception:
            log.exception("could not ask the cluster whether %s runs here; skipping this interval", slot.worker.name)
            return False

    def _run_pass(self, slot: _Slot, nudges: list[Nudge], trigger: str) -> bool:
        worker, started = slot.worker, time.monotonic()
        try:
            with session_scope(self.engine) as db:
                desired = worker.desired(db, nudges)
            worker.apply(desired, worker.observe())
        except Exception as error:
            slot.status.consecutive_failures += 1
            slot.status.last_error = f"{type(error).__name__}: {error}"
            FAILING.labels(worker.name).set(slot.status.consecutive_failures)
            PASSES.labels(worker.name, trigger, "failed").inc()
            failures = slot.status.consecutive_failures
            log.exception("worker %s: %s pass failed (%d in a row)", worker.name, trigger, failures)
            return False
        finally:
            PASS_SECONDS.labels(worker.name).observe(time.monotonic() - started)
        slot.status = WorkerStatus(last_success_at=self.clock())
        FAILING.labels(worker.name).set(0)
        PASSES.labels(worker.name, trigger, "ok").inc()
        return True
