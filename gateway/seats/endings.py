"""Wake the held `/internal/launch/alive` questions when something ends, so a Guacamole seat closes at once.

guacamole-lite's server.js keeps one question per live connection open at the gateway (docs/guacamole.md). An
end on this node (a seat lease, a home session, a supervisor's watch) nudges `EndingSignal.notify` after its
commit; every held question then re-reads the database and answers "no" if its launch is gone. Ends committed on
another node reach a held question by its periodic re-read (`RECHECK_SECONDS`), as they did when server.js polled.
"""

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

VIEW_ENDED = "supervision.watch.ended"
"""Nudged by supervision after the commit of a watch's end (payload: its id): a Guacamole join of it closes at once."""
RECHECK_SECONDS = 3.0
"""A held question re-reads the database at least this often (ends committed on other nodes)."""


class EndingSignal:
    """Thread-safe: `notify` is called from whichever thread committed; waiters live on the event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def notify(self, _topic: str = "", _payload: Any = None) -> None:
        """Wake every held question (an events listener: called after the commit of an end)."""
        with self._lock:
            waiters = list(self._waiters)
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)

    @contextmanager
    def listening(self) -> Iterator[asyncio.Event]:
        """An event set by the next `notify`; enter it BEFORE reading the database, so no end slips between."""
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters.add(waiter)
        try:
            yield waiter[1]
        finally:
            with self._lock:
                self._waiters.discard(waiter)
