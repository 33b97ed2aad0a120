"""Refusals anyone can cause, folded: at most one audit row per (action, peer address, outcome) per window.

Some refusals need no sign-in to cause (a request with ``X-Forwarded-For`` but without the proxy's secret): writing a
hash-chained row for each let any local process flood the audit table, and every row takes the chain's lock. The
first refusal of a key writes its row at once; later ones within ``window`` are only counted, and the count is
carried by the key's next row (``requests``: the refusals that row stands for, itself included), or, once the window
has passed with nothing to carry it, by a row the ``audit.fold_flush`` job writes. So no refusal goes unaudited and
the counts of a key's rows add up to its refusals.

The tally is kept per process, not in the database: a folded request costs no database write at all, and several
nodes each write at most one row per key per window (their counts still add up). What is still counted when the app
stops is written at shutdown; only a killed process loses it.
"""

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from gateway.audit.service import record
from gateway.db import session_scope

FOLD_WINDOW = timedelta(minutes=1)


@dataclass(frozen=True)
class RefusalKey:
    action: str
    source: str
    """The peer address."""
    outcome: str


@dataclass
class _Tally:
    last_row_at: datetime
    folded: int = 0
    target: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)
    """Of the latest refusal folded, for the row that will carry the count."""


@dataclass(frozen=True)
class FoldedRow:
    """An audit row to write: ``requests`` refusals of ``key``, described by the latest one."""

    key: RefusalKey
    requests: int
    target: str
    detail: Mapping[str, Any]


class RefusalFolder:
    """The per-process tally of refusals folded since each key's last row."""

    def __init__(self, window: timedelta = FOLD_WINDOW) -> None:
        self._window = window
        self._tallies: dict[RefusalKey, _Tally] = {}
        self._lock = threading.Lock()

    def refusal(self, key: RefusalKey, target: str, detail: Mapping[str, Any], now: datetime) -> FoldedRow | None:
        """The row to write for this refusal now, or None when it is folded into the key's next row."""
        with self._lock:
            tally = self._tallies.get(key)
            if tally is not None and now - tally.last_row_at < self._window:
                tally.folded, tally.target, tally.detail = tally.folded + 1, target, detail
                return None
            folded = tally.folded if tally is not None else 0
            self._tallies[key] = _Tally(last_row_at=now)
        return FoldedRow(key, folded + 1, target, detail)

    def due(self, now: datetime, *, everything: bool = False) -> list[FoldedRow]:
        """The counts whose window has passed (``everything``: all, at shutdown) with no row to carry them, taken;
        keys with nothing folded are dropped, so the tally holds only the peers of the last window."""
        rows = []
        with self._lock:
            for key, tally in list(self._tallies.items()):
                if not everything and now - tally.last_row_at < self._window:
                    continue
                del self._tallies[key]
                if tally.folded:
                    rows.append(FoldedRow(key, tally.folded, tally.target, tally.detail))
        return rows


def write_folded(engine: Engine, row: FoldedRow, now: datetime) -> None:
    """Append the row in its own transaction (the refusal it records has no other)."""
    with session_scope(engine) as db:
        record(
            db,
            actor="unknown",
            source=row.key.source,
            action=row.key.action,
            outcome=row.key.outcome,
            target=row.target,
            detail={**row.detail, "requests": row.requests},
            clock=lambda: now,
        )


def flush_due(engine: Engine, folder: RefusalFolder, now: datetime, *, everything: bool = False) -> int:
    """Write a row for each count whose window has passed (``everything``: each count); return how many rows."""
    rows = folder.due(now, everything=everything)
    for row in rows:
        write_folded(engine, row, now)
    return len(rows)
