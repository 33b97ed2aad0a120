"""Two transactions in a race's window: one stopped at a step of the real code (the test's own, or a thread's stopped
after its first audit append), and another on a thread and connection of its own, run until it commits or waits for
a lock the first holds."""

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from sqlalchemy import Engine, text

WAITING_FOR_A_LOCK = (
    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
)


def run_beside(engine: Engine, work: Callable[[], None], failures: list[BaseException]) -> threading.Thread:
    """Start ``work`` on its own thread (and connection), its exception appended to ``failures``; return once it has
    finished or waits for a lock this thread's transaction holds (PostgreSQL shows the wait; SQLite's writer waits in
    its busy handler, unseen: a second is far more than the work takes when it does not wait)."""

    def run() -> None:
        try:
            work()
        except BaseException as error:  # noqa: BLE001 (asserted on by the test)
            failures.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + (10 if engine.dialect.name == "postgresql" else 1)
    with engine.connect() as watcher:
        while thread.is_alive() and time.monotonic() < deadline:
            if engine.dialect.name == "postgresql" and watcher.execute(text(WAITING_FOR_A_LOCK)).scalar_one():
                break
            watcher.rollback()
            time.sleep(0.01)
    return thread


def race_from_the_first_append(
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    appenders: Sequence[tuple[object, str]],
    holder: Callable[[], None],
    contender: Callable[[], None],
) -> list[BaseException]:
    """Run ``holder`` on a thread of its own until its first audit append has returned (through any of
    ``appenders``: a module and the name of an appending function it calls, patched here), so that it holds the audit
    chain; then ``contender`` beside it until it commits or waits for a lock (``run_beside``); then let ``holder`` go
    on. Both are joined; what either raised is returned (a deadlock PostgreSQL broke shows as one)."""
    first_append, go_on = threading.Event(), threading.Event()
    holding: list[threading.Thread] = []

    def pausing(appending: Callable[..., Any]) -> Callable[..., Any]:
        def append(*args: Any, **kwargs: Any) -> Any:
            appended = appending(*args, **kwargs)
            if threading.current_thread() in holding and not first_append.is_set():
                first_append.set()
                assert go_on.wait(20)
            return appended

        return append

    for module, name in appenders:
        monkeypatch.setattr(module, name, pausing(getattr(module, name)))
    failures: list[BaseException] = []

    def hold() -> None:
        try:
            holder()
        except BaseException as error:  # noqa: BLE001 (asserted on by the test)
            failures.append(error)

    held = threading.Thread(target=hold)
    holding.append(held)
    held.start()
    contending = None
    try:
        assert first_append.wait(20), "the holder never appended to the audit chain"
        contending = run_beside(engine, contender, failures)
    finally:
        go_on.set()
        held.join(30)
        if contending is not None:
            contending.join(30)
    return failures
