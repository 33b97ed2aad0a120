"""Two transactions in a race's window: the test's own, stopped at a step of the real code, and another on a thread
and connection of its own, run until it commits or waits for a lock the first holds."""

import threading
import time
from collections.abc import Callable

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
