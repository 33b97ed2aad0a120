"""The supervisors' wall: one snapshot per tick for all viewers, sent as diffs over server-sent events.

However many supervisors watch, the seat view is computed once per tick (or at once when a work state or a session
changes) by one worker the app's runner starts and stops, compared with the previous one, and the same encoded diff
is put on the queue of every viewer with the same team scope (`gateway.supervision.scope`): a diff is encoded once per
distinct scope and carries only that scope's rows, so another team's seats never reach a browser. Nobody watching,
nothing is computed. A new viewer gets the whole current snapshot of its scope first. A viewer too slow to keep up is
dropped; its browser reconnects (EventSource does) and starts again from a snapshot.
"""

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import Session

from gateway.db import session_scope
from gateway.sessions.service import SESSION_ENDED, SESSION_STARTED
from gateway.supervision.settings import SupervisionSettings
from gateway.supervision.state import WORK_STATE_CHANGED
from gateway.supervision.view import SeatRow, seat_view
from gateway.workers.contract import Nudge, Schedule, Worker
from policy import SupervisedTeams

Rows = dict[str, dict[str, object]]
Groups = dict[str, tuple[str, ...]]
"""Each row's agent group identifiers, by session id: what decides which viewers get the row."""
QUEUE_LIMIT = 64
COALESCE_SECONDS = 0.05
"""After a computation, wait this long so a burst of changes becomes one diff."""
TOPICS = (WORK_STATE_CHANGED, SESSION_STARTED, SESSION_ENDED)


@dataclass(frozen=True)
class WallView:
    """One computation of the wall: the rows sent to browsers and, kept server-side, each row's groups."""

    rows: Rows
    groups: Groups


@dataclass(frozen=True)
class _Viewer:
    loop: asyncio.AbstractEventLoop
    scope: SupervisedTeams


def _view_of(seat_rows: Sequence[SeatRow]) -> WallView:
    return WallView(
        {row.session_id: row.as_dict() for row in seat_rows}, {row.session_id: row.policy_groups for row in seat_rows}
    )


def compute_view(engine: Engine, now: datetime, settings: SupervisionSettings) -> WallView:
    with session_scope(engine) as db:
        return _view_of(seat_view(db, now, settings))


def in_scope(view: WallView, scope: SupervisedTeams) -> Rows:
    """The rows a viewer with this scope may see."""
    if scope.every_team:
        return view.rows
    return {key: row for key, row in view.rows.items() if scope.covers(view.groups.get(key, ()))}


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


def scope_diff(old: Rows, new: Rows) -> str | None:
    """One scope's encoded diff event, or None when nothing it can see changed."""
    changed, removed = diff(old, new)
    if not changed and not removed:
        return None
    old_summary, new_summary = summary(old), summary(new)
    return sse(
        "diff", {"upsert": changed, "remove": removed, "summary": new_summary if new_summary != old_summary else None}
    )


class WallHub(Worker[WallView | None, None]):
    """The wall for every viewer of one app: a worker the app's runner starts and stops (``supervision.wall``).

    Its pass reads the seat view (only while someone watches), diffs each viewer scope's part of it with the last one
    and hands each encoded diff to that scope's viewers' queues on their own event loops. At stop every stream is
    closed."""

    name = "supervision.wall"

    def __init__(self, engine: Engine, settings: SupervisionSettings, clock: Callable[[], datetime]) -> None:
        self._engine, self._settings, self._clock = engine, settings, clock
        self.schedule = Schedule(interval=timedelta(seconds=settings.wall_tick_seconds), topics=frozenset(TOPICS))
        self._view: WallView | None = None
        """The last view sent; None while nobody watches (the next viewer then gets a fresh snapshot)."""
        self._viewers: dict[asyncio.Queue[str | None], _Viewer] = {}
        self._lock = threading.Lock()

    async def subscribe(self, scope: SupervisedTeams) -> tuple[asyncio.Queue[str | None], str]:
        """A queue of encoded diffs for a new viewer with this team scope, and the snapshot to send first."""
        queue: asyncio.Queue[str | None] = asyncio.Queue(QUEUE_LIMIT)
        with self._lock:
            view = self._view
        if view is None:
            view = await asyncio.to_thread(compute_view, self._engine, self._clock(), self._settings)
        with self._lock:
            if self._view is None:
                self._view = view
            view = self._view
            self._viewers[queue] = _Viewer(asyncio.get_running_loop(), scope)
        visible = in_scope(view, scope)
        return queue, sse("snapshot", {"rows": list(visible.values()), "summary": summary(visible)})

    def unsubscribe(self, queue: asyncio.Queue[str | None]) -> None:
        with self._lock:
            self._viewers.pop(queue, None)
            if not self._viewers:
                self._view = None

    def desired(self, db: Session, nudges: Sequence[Nudge]) -> WallView | None:
        with self._lock:
            if not self._viewers:
                return None
        return _view_of(seat_view(db, self._clock(), self._settings))

    def apply(self, desired: WallView | None, observed: None) -> None:
        """Send each scope's diff (if anything in it changed) to its viewers."""
        self.tick(desired)
        time.sleep(COALESCE_SECONDS)  # nudges arriving meanwhile become one diff in the next pass

    def tick(self, new: WallView | None) -> dict[SupervisedTeams, str]:
        """Diff ``new`` with the last view per viewer scope and queue it; returns what was sent, by scope."""
        with self._lock:
            if new is None or self._view is None:
                return {}
            old, self._view = self._view, new
            viewers = list(self._viewers.items())
        sent: dict[SupervisedTeams, str] = {}
        for scope in {viewer.scope for _, viewer in viewers}:
            message = scope_diff(in_scope(old, scope), in_scope(new, scope))
            if message is not None:
                sent[scope] = message
        for queue, viewer in viewers:
            if viewer.scope in sent:
                self._send(viewer.loop, queue, sent[viewer.scope])
        return sent

    def stop(self) -> None:
        """Close every viewer's stream (a browser reconnects to the next life and gets a snapshot)."""
        with self._lock:
            viewers, self._viewers, self._view = list(self._viewers.items()), {}, None
        for queue, viewer in viewers:
            self._send(viewer.loop, queue, None)

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
