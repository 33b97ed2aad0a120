"""The supervisors' wall: one snapshot per tick for all viewers, sent as diffs over server-sent events.

However many supervisors watch, the seat view is computed once per tick (or at once when a work state or a session
changes) by one worker the app's runner starts and stops, compared with the previous one, and the same encoded diff
is put on every viewer's queue. Nobody watching, nothing is computed. A new viewer
gets the whole current snapshot first. A viewer too slow to keep up is dropped; its browser reconnects
(EventSource does) and starts again from a snapshot.
"""

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import Session

from gateway.db import session_scope
from gateway.sessions.service import SESSION_ENDED, SESSION_STARTED
from gateway.supervision.settings import SupervisionSettings
from gateway.supervision.state import WORK_STATE_CHANGED
from gateway.supervision.view import seat_view
from gateway.workers.contract import Nudge, Schedule, Worker

Rows = dict[str, dict[str, object]]
QUEUE_LIMIT = 64
COALESCE_SECONDS = 0.05
"""After a computation, wait this long so a burst of changes becomes one diff."""
TOPICS = (WORK_STATE_CHANGED, SESSION_STARTED, SESSION_ENDED)


def compute_rows(engine: Engine, now: datetime, settings: SupervisionSettings) -> Rows:
    with session_scope(engine) as db:
        return {row.session_id: row.as_dict() for row in seat_view(db, now, settings)}


def diff(old: Rows, new: Rows) -> tuple[list[dict[str, object]], list[str]]:
    """Rows that are new or changed, and ids that are gone."""
    changed = [row for key, row in new.items() if old.get(key) != row]
    return changed, [key for key in old if key not in new]


def summary(rows: Rows) -> dict[str, int]:
    counts = Counter(str(row["state"]) for row in rows.values())
    counts["total"] = len(rows)
    counts["link_down"] = sum(1 for row in rows.values() if row["link"] == "down")
    counts["break_too_long"] = sum(1 for row in rows.values() if row["break_too_long"])
    return dict(counts)


def sse(event: str, data: object) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'), ensure_ascii=False)}\n\n"


class WallHub(Worker[Rows | None, None]):
    """The wall for every viewer of one app: a worker the app's runner starts and stops (``supervision.wall``).

    Its pass reads the seat view (only while someone watches), diffs it with the last one and hands the same encoded
    diff to every viewer's queue on that viewer's event loop. At stop every stream is closed."""

    name = "supervision.wall"

    def __init__(self, engine: Engine, settings: SupervisionSettings, clock: Callable[[], datetime]) -> None:
        self._engine, self._settings, self._clock = engine, settings, clock
        self.schedule = Schedule(interval=timedelta(seconds=settings.wall_tick_seconds), topics=frozenset(TOPICS))
        self._rows: Rows | None = None
        """The last view sent; None while nobody watches (the next viewer then gets a fresh snapshot)."""
        self._viewers: dict[asyncio.Queue[str | None], asyncio.AbstractEventLoop] = {}
        self._lock = threading.Lock()

    async def subscribe(self) -> tuple[asyncio.Queue[str | None], str]:
        """A queue of encoded diffs for a new viewer, and the snapshot to send first."""
        queue: asyncio.Queue[str | None] = asyncio.Queue(QUEUE_LIMIT)
        with self._lock:
            rows = self._rows
        if rows is None:
            rows = await asyncio.to_thread(compute_rows, self._engine, self._clock(), self._settings)
        with self._lock:
            if self._rows is None:
                self._rows = rows
            rows = self._rows
            self._viewers[queue] = asyncio.get_running_loop()
        return queue, sse("snapshot", {"rows": list(rows.values()), "summary": summary(rows)})

    def unsubscribe(self, queue: asyncio.Queue[str | None]) -> None:
        with self._lock:
            self._viewers.pop(queue, None)
            if not self._viewers:
                self._rows = None

    def desired(self, db: Session, nudges: Sequence[Nudge]) -> Rows | None:
        with self._lock:
            if not self._viewers:
                return None
        return {row.session_id: row.as_dict() for row in seat_view(db, self._clock(), self._settings)}

    def apply(self, desired: Rows | None, observed: None) -> None:
        """Send the diff (if anything changed) to every viewer."""
        self.tick(desired)
        time.sleep(COALESCE_SECONDS)  # nudges arriving meanwhile become one diff in the next pass

    def tick(self, new: Rows | None) -> str | None:
        """Diff ``new`` with the last view and queue it for every viewer; returns what was sent."""
        with self._lock:
            if new is None or self._rows is None:
                return None
            changed, removed = diff(self._rows, new)
            old_summary, self._rows = summary(self._rows), new
            viewers = list(self._viewers.items())
        if not changed and not removed:
            return None
        new_summary = summary(new)
        message = sse(
            "diff",
            {"upsert": changed, "remove": removed, "summary": new_summary if new_summary != old_summary else None},
        )
        for queue, loop in viewers:
            self._send(loop, queue, message)
        return message

    def stop(self) -> None:
        """Close every viewer's stream (a browser reconnects to the next life and gets a snapshot)."""
        with self._lock:
            viewers, self._viewers, self._rows = list(self._viewers.items()), {}, None
        for queue, loop in viewers:
            self._send(loop, queue, None)

    def _send(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None], message: str | None) -> None:
        def put() -> None:
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:  # too slow to keep up: it is dropped, and its browser reconnects
                self.unsubscribe(queue)
                queue.get_nowait()
                queue.put_nowait(None)

        if not loop.is_closed():
            loop.call_soon_threadsafe(put)
