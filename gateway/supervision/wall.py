"""The supervisors' wall: one snapshot per tick for all viewers, sent as diffs over server-sent events.

However many supervisors watch, the seat view is computed once per tick (or at once when a work state or a session
changes), compared with the previous one, and the same encoded diff is put on every viewer's queue. A new viewer
gets the whole current snapshot first. A viewer too slow to keep up is dropped; its browser reconnects
(EventSource does) and starts again from a snapshot.
"""

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine

from gateway.db import session_scope
from gateway.events import listen, unlisten
from gateway.sessions.service import SESSION_ENDED, SESSION_STARTED
from gateway.supervision.settings import SupervisionSettings
from gateway.supervision.state import WORK_STATE_CHANGED
from gateway.supervision.view import seat_view

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


class WallHub:
    """Computes the wall for every viewer of one app; lives in ``app.state`` and runs only while watched."""

    def __init__(self, engine: Engine, settings: SupervisionSettings, clock: Callable[[], datetime]) -> None:
        self._engine, self._settings, self._clock = engine, settings, clock
        self._rows: Rows = {}
        self._queues: set[asyncio.Queue[str | None]] = set()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._start_lock = asyncio.Lock()

    def _on_change(self, _topic: str, _payload: object) -> None:
        """Called after a commit, in whichever thread committed."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    async def subscribe(self) -> tuple[asyncio.Queue[str | None], str]:
        """A queue of encoded diffs for a new viewer, and the snapshot to send first."""
        async with self._start_lock:
            if self._task is None or self._task.done():
                self._loop = asyncio.get_running_loop()
                self._rows = await asyncio.to_thread(compute_rows, self._engine, self._clock(), self._settings)
                for topic in TOPICS:
                    listen(topic, self._on_change)
                self._task = asyncio.create_task(self._run())
            queue: asyncio.Queue[str | None] = asyncio.Queue(QUEUE_LIMIT)
            self._queues.add(queue)
        rows = list(self._rows.values())
        return queue, sse("snapshot", {"rows": rows, "summary": summary(self._rows)})

    def unsubscribe(self, queue: asyncio.Queue[str | None]) -> None:
        self._queues.discard(queue)

    async def _run(self) -> None:
        try:
            while self._queues:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._settings.wall_tick_seconds)
                self._wake.clear()
                await self.tick()
                await asyncio.sleep(COALESCE_SECONDS)
        finally:
            for topic in TOPICS:
                unlisten(topic, self._on_change)

    async def tick(self) -> str | None:
        """Recompute once, send the diff (if anything changed) to every viewer; returns what was sent."""
        new = await asyncio.to_thread(compute_rows, self._engine, self._clock(), self._settings)
        changed, removed = diff(self._rows, new)
        old_summary, self._rows = summary(self._rows), new
        if not changed and not removed:
            return None
        new_summary = summary(new)
        message = sse(
            "diff",
            {"upsert": changed, "remove": removed, "summary": new_summary if new_summary != old_summary else None},
        )
        for queue in list(self._queues):
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:
                self._queues.discard(queue)
                queue.get_nowait()
                queue.put_nowait(None)
        return message
