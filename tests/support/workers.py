"""Workers in tests: run them as the app does (one ``WorkerRunner``), or one pass of one worker, synchronously."""

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine

from gateway.clock import Clock, utcnow
from gateway.db import session_scope
from gateway.workers.contract import Nudge, Worker
from gateway.workers.runner import WorkerRunner


@contextmanager
def running(workers: Sequence[Worker[Any, Any]], engine: Engine, clock: Clock = utcnow) -> Iterator[WorkerRunner]:
    """Started before the block, stopped (threads joined, each worker's ``stop``) after it."""
    runner = WorkerRunner(workers, engine, clock)
    runner.start()
    try:
        yield runner
    finally:
        runner.stop()


@contextmanager
def alongside_app(workers: Sequence[Worker[Any, Any]], engine: Engine) -> Iterator[Mapping[str, Any]]:
    """For ``serving_portal(alongside=…)``: the workers run while the portal serves; no extra portal fields."""
    with running(workers, engine):
        yield {}


def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    """Polls ``condition`` until it holds or ``seconds`` pass; returns its last answer (assert on it)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def one_pass(engine: Engine, worker: Worker[Any, Any], nudges: Sequence[Nudge] = ()) -> None:
    """One pass of the contract's three steps, as the runner runs it (desired in a committed transaction, then
    observe and apply outside it); raises what the pass raises."""
    with session_scope(engine) as db:
        desired = worker.desired(db, list(nudges))
    worker.apply(desired, worker.observe())
