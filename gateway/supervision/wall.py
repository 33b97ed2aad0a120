"""The supervisors' wall: one snapshot per tick for all viewers, sent as diffs over server-sent events.

However many supervisors watch, the seat view is computed once per tick (or at once when a work state or a session
changes), compared with the previous one, and the same encoded diff is put on the queue of every viewer with the
same team scope (`gateway.supervision.scope`): a diff is encoded once per distinct scope, and carries only that
scope's rows, so another team's seats never reach a browser. A new viewer gets the whole current snapshot of its
scope first. A viewer too slow to keep up is dropped; its browser reconnects (EventSource does) and starts again
from a snapshot.
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
from policy import SupervisedTeams

Rows = dict[str, dict[str, object]]
Groups = dict[str, tuple[str, ...]]
"""Each row's agent group identifiers, by session id: what decides which viewers get the row."""
QUEUE_LIMIT = 64
COALESCE_SECONDS = 0.05
"""After a computation, wait this long so a burst of changes becomes one diff."""
TOPICS = (WORK_STATE_CHANGED, SESSION_STARTED, SESSION_ENDED)


def compute_rows(engine: Engine, now: datetime, settings: SupervisionSettings) -> tuple[Rows, Groups]:
    with session_scope(engine) as db:
        view = seat_view(db, now, settings)
    return {row.session_id: row.as_dict() for row in view}, {row.session_id: row.policy_groups for row in view}


def in_scope(rows: Rows, groups: Groups, scope: SupervisedTeams) -> Rows:
    """The rows a viewer with this scope may see."""
    if scope.every_team:
        return rows
    return {key: row for key, row in rows.items() if scope.covers(groups.get(key, ()))}


def diff(old: Rows, new: Rows) -> tuple[list[dict[str, object]], list[str]]:
    """Rows that are new or changed, and ids that are gone."""
    changed = [row for key, row in new.items() if old.get(key) != row]
    return changed, [key for key in old if key not in new]


def summary(rows: Rows) -> dict[str, int]:
    counts = Counter(str(row["state"]) for row in rows.values())
    counts["total"] = len(rows)
    counts["link_down"] = sum(1 for row in rows.values() if row["link"] == "down")
    counts["break_too_long"] = sum(1 for row in rows.values() if row["break_too_long"])
    counts["help"] = sum(1 for row in rows.values() if row["help_since"])
    return dict(counts)


def sse(event: str, data: object) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'), ensure_ascii=False)}\n\n"


class WallHub:
    """Computes the wall for every viewer of one app; lives in ``app.state`` and runs only while watched."""

    def __init__(self, engine: Engine, settings: SupervisionSettings, clock: Callable[[], datetime]) -> None:
        self._engine, self._settings, self._clock = engine, settings, clock
        self._rows: Rows = {}
        self._groups: Groups = {}
        self._queues: dict[asyncio.Queue[str | None], SupervisedTeams] = {}
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._start_lock = asyncio.Lock()

    def _on_change(self, _topic: str, _payload: object) -> None:
        """Called after a commit, in whichever thread committed."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    async def subscribe(self, scope: SupervisedTeams) -> tuple[asyncio.Queue[str | None], str]:
        """A queue of encoded diffs for a new viewer with this team scope, and the snapshot to send first."""
        async with self._start_lock:
            if self._task is None or self._task.done():
                self._loop = asyncio.get_running_loop()
                computed = await asyncio.to_thread(compute_rows, self._engine, self._clock(), self._settings)
                self._rows, self._groups = computed
                for topic in TOPICS:
                    listen(topic, self._on_change)
                self._task = asyncio.create_task(self._run())
            queue: asyncio.Queue[str | None] = asyncio.Queue(QUEUE_LIMIT)
            self._queues[queue] = scope
        visible = in_scope(self._rows, self._groups, scope)
        return queue, sse("snapshot", {"rows": list(visible.values()), "summary": summary(visible)})

    def unsubscribe(self, queue: asyncio.Queue[str | None]) -> None:
        self._queues.pop(queue, None)

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

    async def tick(self) -> dict[SupervisedTeams, str]:
        """Recompute once, send each scope's diff (if anything in it changed) to its viewers; returns what was sent."""
        new, new_groups = await asyncio.to_thread(compute_rows, self._engine, self._clock(), self._settings)
        old, old_groups = self._rows, self._groups
        self._rows, self._groups = new, new_groups
        sent = {}
        for scope in set(self._queues.values()):
            message = scope_diff(in_scope(old, old_groups, scope), in_scope(new, new_groups, scope))
            if message is None:
                continue
            sent[scope] = message
            for queue in [queue for queue, its_scope in self._queues.items() if its_scope == scope]:
                self._offer(queue, message)
        return sent

    def _offer(self, queue: asyncio.Queue[str | None], message: str) -> None:
        try:
            queue.put_nowait(message)
        except asyncio.QueueFull:
            self._queues.pop(queue, None)
            queue.get_nowait()
            queue.put_nowait(None)


def scope_diff(old: Rows, new: Rows) -> str | None:
    """One scope's encoded diff event, or None when nothing it can see changed."""
    changed, removed = diff(old, new)
    if not changed and not removed:
        return None
    old_summary, new_summary = summary(old), summary(new)
    return sse(
        "diff", {"upsert": changed, "remove": removed, "summary": new_summary if new_summary != old_summary else None}
    )
