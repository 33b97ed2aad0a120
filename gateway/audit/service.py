"""Append to and verify the hash-chained audit log.

Each row's hash covers its own fields and the previous row's hash, so altering a row breaks its own hash, deleting one
leaves a gap in ``seq`` and a broken link, and swapping two breaks the links around them. ``verify_chain`` names the
first row where any of that happened.
"""

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import sqlalchemy
from sqlalchemy import (
    CTE,
    ColumnElement,
    Insert,
    Select,
    Text,
    bindparam,
    cast,
    column,
    func,
    insert,
    literal_column,
    text,
    update,
)
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session, col, select

from gateway.audit.models import AuditEvent, AuditHead
from gateway.clock import Clock, as_utc, utcnow
from gateway.events import NOTIFYING_EACH, notify_values, send_nudges, unsent_notes

GENESIS_HASH = "0" * 64
VERIFY_BATCH = 1000


_HASHED_FIELDS = ("seq", "at", "actor", "action", "target", "outcome", "source", "detail", "prev_hash")
"""What a row's hash covers, in this order: every field but the hash itself."""


_JSON: dict[str, Any] = {"ensure_ascii": False, "separators": (",", ":")}


def _timestamp(at: datetime) -> str:
    return as_utc(at).isoformat(timespec="microseconds")


def _digest(fields: Mapping[str, Any]) -> str:
    values = [_timestamp(fields[name]) if name == "at" else fields[name] for name in _HASHED_FIELDS]
    return hashlib.sha256(json.dumps(values, **_JSON).encode()).hexdigest()


def event_hash(event: AuditEvent) -> str:
    return _digest({name: getattr(event, name) for name in _HASHED_FIELDS})


# Built once, with bound parameters, and run as table statements on plain values: an ORM update, a reload of the head
# and a flush of two ORM objects cost about 1.7 ms of CPU an event (now ~0.15 ms), and a sign-in writes two or three.
_EVENTS = AuditEvent.__table__  # type: ignore[attr-defined]
_HEADS = AuditHead.__table__  # type: ignore[attr-defined]
_TAKE_HEAD = update(_HEADS).where(_HEADS.c.id == 1).values(seq=_HEADS.c.seq + 1).returning(_HEADS.c.seq, _HEADS.c.hash)
"""SQLite: the chain's write lock, taken by bumping the head (made by the first migration, never created here);
returns the new event's sequence number and the hash it follows, in the same round trip."""
_APPEND = insert(_EVENTS).values({column.name: bindparam(f"event_{column.name}") for column in _EVENTS.c})
_MOVE_HEAD = update(_HEADS).where(_HEADS.c.id == 1).values(seq=bindparam("event_seq"), hash=bindparam("event_hash"))
_APPEND_MOVING_HEAD = _APPEND.add_cte(_MOVE_HEAD.cte("moved_head"))
"""PostgreSQL: both in one round trip (a data-modifying WITH), one fewer while every appender waits on the lock."""
_GIVEN = ("at", "actor", "action", "target", "outcome", "source", "detail")
"""The fields the appender gives; the chain gives ``seq`` and ``prev_hash`` around them (`_HASHED_FIELDS`)."""


def _appending_at_head(head: Select[Any], rows: int, carried: CTE | None) -> Insert:
    """PostgreSQL: the whole append of ``rows`` events in one statement. The head's row is locked and read
    (``head``), each row chained to the one before it, the head moved to the last one's sequence number and hash,
    and the rows written: each hash is taken in the server, over the JSON array `_digest` hashes, written as the
    row's given fields (``event_fields_<i>``, from Python) between its ``seq`` and the hash before it. The head is
    read ``FOR UPDATE``: a locking read waits for the appender before and returns the row as it committed it, and
    the ``UPDATE`` then moves that same version (the row as the statement's snapshot saw it is re-read once the lock
    is ours). ``carried``, written under `_HEAD_TAKEN`, runs in the statement too: the head's move counts its rows,
    which puts it after the head's lock in the statement's ``WITH``, where its condition can name that lock."""
    link: Any = head.cte("locked_head")
    links = []
    for i in range(rows):
        seq = link.c.seq + 1
        hashed: ColumnElement[str] = (
            (literal_column("'['") + cast(seq, Text) + "," + bindparam(f"event_fields_{i}", type_=Text) + ',"')
            + link.c.hash
            + '"]'
        )
        digest = func.encode(func.sha256(func.convert_to(hashed, literal_column("'UTF8'"))), "hex")
        link = sqlalchemy.select(link.c.id, seq.label("seq"), link.c.hash.label("prev_hash"), digest.label("hash")).cte(
            f"chained_{i}"
        )
        links.append(link)
    carried_in = (
        [] if carried is None else [sqlalchemy.select(func.count()).select_from(carried).scalar_subquery() >= 0]
    )
    moved = (
        update(_HEADS)
        .where(_HEADS.c.id == link.c.id, *carried_in)
        .values(seq=link.c.seq, hash=link.c.hash)
        .returning(_HEADS.c.id)
        .cte("moved_head")
    )
    chained = sqlalchemy.union_all(
        *(
            sqlalchemy.select(
                row.c.seq,
                *(bindparam(f"event_{name}_{i}", type_=_EVENTS.c[name].type) for name in _GIVEN),
                row.c.prev_hash,
                row.c.hash,
            ).join_from(row, moved, moved.c.id == row.c.id)
            for i, row in enumerate(links)
        )
    )
    return insert(_EVENTS).from_select((*_HASHED_FIELDS, "hash"), chained).returning(_EVENTS.c.seq, _EVENTS.c.hash)


_HEAD_LOCKED = select(_HEADS.c.id, _HEADS.c.seq, _HEADS.c.hash).where(_HEADS.c.id == 1).with_for_update()
_HEAD_LOCKED_NOTIFYING = _HEAD_LOCKED.where(text(NOTIFYING_EACH).columns(column("sent")).scalar_subquery() >= 0)
"""The same, sending the transaction's unsent nudges in the same round trip (a condition on how many notifications
they made, always true: the subquery is run once, for the head's row)."""


@lru_cache(maxsize=16)
def _append_at_head_statement(rows: int, notifying: bool, carried: CTE | None) -> Insert:
    """Built once for each number of rows (a sign-in that takes over a session appends two) and carried part."""
    return _appending_at_head(_HEAD_LOCKED_NOTIFYING if notifying else _HEAD_LOCKED, rows, carried)


_HEAD_TAKEN = "EXISTS (SELECT FROM locked_head)"
"""In a part a transaction's first append carries (`Carried`): the chain's lock is taken. A part written under this
condition takes its rows once the lock is the statement's, never while waiting for it."""


@dataclass(frozen=True, slots=True)
class Carried:
    """PostgreSQL: a data-modifying part of the caller's (``part(condition)``, a ``WITH`` whose rows are taken only
    where the SQL ``condition`` holds) an append writes in its own statement, with its bound ``values``: the rows it
    changes are taken after the chain's lock, and held to the commit for as short as the lock itself."""

    part: Callable[[str], CTE]
    values: Mapping[str, object]


_HELD_HEAD = "sohogw.audit_head"
"""In the session's ``info``: (the transaction that appended last, the head it left)."""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One event as its writer gives it; the chain adds its time, ``seq`` and hashes (`record_all`)."""

    actor: str
    action: str
    outcome: str
    target: str = ""
    source: str = ""
    detail: Mapping[str, Any] | None = None


def record(
    db: Session,
    *,
    actor: str,
    action: str,
    outcome: str,
    target: str = "",
    source: str = "",
    detail: Mapping[str, Any] | None = None,
    clock: Clock = utcnow,
) -> None:
    """Append one event in the caller's transaction; it commits or rolls back with the action it records
    (`record_all`)."""
    record_all(db, [AuditEntry(actor, action, outcome, target, source, detail)], clock)


def record_all(
    db: Session, entries: Sequence[AuditEntry], clock: Clock = utcnow, *, carrying: Carried | None = None
) -> None:
    """Append events, in this order, in the caller's transaction; they commit or roll back with the action they
    record. ``carrying`` (PostgreSQL) is written with them, after the chain's lock is taken (`Carried`).

    The caller's pending rows are flushed first (one statement each at most) and its nudges go with the statement
    that takes the chain's lock: the lock, which every appender waits for, is taken after their row locks rather
    than held while waiting for them, and the nudges cost no round trip of their own (PostgreSQL; those asked after
    the transaction's first append go in a statement of their own). On PostgreSQL a transaction's first append is
    one statement, lock, head and every row (`_appending_at_head`): a sign-in that takes over a session writes its
    two rows in one round trip, under the lock every appender waits for. Each later event is one statement."""
    if not entries:
        return  # nothing to chain: the head is left as it is, not taken
    db.flush()
    at = as_utc(clock())
    given = [
        {
            "at": at,
            "actor": _as_stored("actor", entry.actor),
            "action": _as_stored("action", entry.action),
            "target": _as_stored("target", entry.target),
            "outcome": _as_stored("outcome", entry.outcome),
            "source": _as_stored("source", entry.source),
            "detail": json.dumps(dict(entry.detail or {}), ensure_ascii=False, sort_keys=True, default=str),
        }
        for entry in entries
    ]
    held = _held_head(db)
    postgres = db.get_bind().dialect.name == "postgresql"
    if held is None and postgres:
        seq, digest = _append_at_head(db, given, carrying)
    else:
        if carrying is not None:  # PostgreSQL, the lock this transaction's already: the part in a statement of its own
            db.execute(sqlalchemy.select(func.count()).select_from(carrying.part("TRUE")), carrying.values)
        if held is None:
            seq, digest = _take_head(db)
        else:
            send_nudges(db)
            seq, digest = held
        for number, fields in enumerate(given, start=seq):
            event = {"seq": number, **fields, "prev_hash": digest}
            digest = event["hash"] = _digest(event)
            values = {f"event_{name}": value for name, value in event.items()}
            if postgres:
                db.execute(_APPEND_MOVING_HEAD, values)
            else:
                db.execute(_APPEND, values)
                db.execute(_MOVE_HEAD, values)
        seq += len(given) - 1
    db.info[_HELD_HEAD] = (_innermost_transaction(db), seq, digest)


def _as_stored(name: str, value: object) -> str:
    """``value`` as its column will hold it, so the hash covers what is read back: text (a ``str`` subclass such as
    an enum member as its own characters), a NUL character shown as the four characters ``\\x00``, cut to the
    column's length with an ellipsis (PostgreSQL refuses a NUL and a longer value, either of which would lose the
    action; SQLite keeps them, or a number as a number the check then reads back as text)."""
    text = (str.__str__(value) if isinstance(value, str) else str(value)).replace("\x00", "\\x00")
    limit: int = _EVENTS.c[name].type.length
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _innermost_transaction(db: Session) -> SessionTransaction | None:
    return db.get_nested_transaction() or db.get_transaction()


def _held_head(db: Session) -> tuple[int, str] | None:
    """The next event's sequence number and the hash it follows, when this very transaction (or savepoint) appended
    the last event: it has held the chain's lock since (the head's row lock on PostgreSQL, the one writer's lock on
    SQLite), so nobody else moved the head, and what it left is what the head holds. A second event in one
    transaction (a take-over's end and the sign-in) is then one round trip, not two. Any other transaction, a
    savepoint included (rolling it back would put the head back), reads the head again."""
    held = db.info.get(_HELD_HEAD)
    if held is None:
        return None
    transaction, seq, digest = held
    if transaction is not _innermost_transaction(db) or transaction is None or not transaction.is_active:
        return None
    return seq + 1, digest


def _append_at_head(db: Session, given: Sequence[Mapping[str, Any]], carrying: Carried | None) -> tuple[int, str]:
    """PostgreSQL, a transaction's first append: take the chain's lock, move the head and write the rows (and the
    ``carrying`` part, under `_HEAD_TAKEN`) in one round trip; returns the last row's sequence number and hash."""
    values: dict[str, Any] = {}
    for i, fields in enumerate(given):
        hashed = json.dumps([_timestamp(fields["at"]), *(fields[name] for name in _GIVEN[1:])], **_JSON)[1:-1]
        values[f"event_fields_{i}"] = hashed
        values |= {f"event_{name}_{i}": fields[name] for name in _GIVEN}
    notes = unsent_notes(db)
    carried = carrying.part(_HEAD_TAKEN) if carrying is not None else None
    statement = _append_at_head_statement(len(given), bool(notes), carried)
    if notes:
        values |= notify_values(notes)
    rows = db.execute(statement, values if carrying is None else {**values, **carrying.values}).all()
    if not rows:
        raise RuntimeError("the audit chain head is missing: run `sohogw db upgrade`")
    last = max(rows, key=lambda row: row.seq)
    return last.seq, last.hash


def _take_head(db: Session) -> tuple[int, str]:
    """SQLite: take the chain's lock: the new event's sequence number and the hash it follows."""
    head = db.execute(_TAKE_HEAD).one_or_none()
    if head is None:
        raise RuntimeError("the audit chain head is missing: run `sohogw db upgrade`")
    return head.seq, head.hash


@dataclass(frozen=True)
class ChainReport:
    """The result of a verification: ``first_bad_seq`` is None when the chain is whole."""

    rows_checked: int
    first_bad_seq: int | None = None
    problem: str = ""

    @property
    def intact(self) -> bool:
        return self.first_bad_seq is None


def _rows(db: Session, after: int, through: int | None = None) -> Iterator[AuditEvent]:
    """The rows after sequence number ``after`` in order, up to ``through`` when it is given."""
    last = after
    while True:
        query = select(AuditEvent).where(AuditEvent.seq > last)
        if through is not None:
            query = query.where(AuditEvent.seq <= through)
        batch = db.exec(query.order_by(col(AuditEvent.seq)).limit(VERIFY_BATCH)).all()
        if not batch:
            return
        yield from batch
        last = batch[-1].seq


@dataclass
class _Walk:
    """How far a verification has got: the next row it expects and the hash that row must follow."""

    expected_seq: int = 1
    expected_prev: str = GENESIS_HASH

    @property
    def checked(self) -> int:
        return self.expected_seq - 1

    def check(self, rows: Iterator[AuditEvent]) -> ChainReport | None:
        """Follow ``rows``; the report of the first bad one, or None."""
        for event in rows:
            if event.seq != self.expected_seq:
                problem = f"row {self.expected_seq} is missing (next row is {event.seq})"
                return ChainReport(self.checked, self.expected_seq, problem)
            if event.prev_hash != self.expected_prev:
                return ChainReport(self.checked, event.seq, f"row {event.seq} does not follow row {event.seq - 1}")
            if event_hash(event) != event.hash:
                return ChainReport(self.checked, event.seq, f"row {event.seq} was altered (its hash does not match)")
            self.expected_seq, self.expected_prev = event.seq + 1, event.hash
        return None


def verify_chain(db: Session) -> ChainReport:
    """Walk the chain from the first row and report the first altered, removed or reordered row.

    Other nodes go on appending while an admin verifies. A row and the head that counts it commit together, so the
    head read after the walk counts at least every row the walk saw: rows it does not count follow the head, which
    no append leaves. The head may count rows committed since the walk passed: those are walked too, up to it."""
    walk = _Walk()
    if (bad := walk.check(_rows(db, 0))) is not None:
        return bad
    head = db.get(AuditHead, 1, populate_existing=True)  # `record` writes the head past the session's objects
    if head is None:
        return ChainReport(walk.checked)
    if head.seq > walk.checked and (bad := walk.check(_rows(db, walk.checked, through=head.seq))) is not None:
        return bad
    checked = walk.checked
    if head.seq < checked:
        return ChainReport(checked, head.seq + 1, f"rows {head.seq + 1} to {checked} follow the head")
    if head.seq > checked:
        return ChainReport(checked, checked + 1, f"rows {checked + 1} to {head.seq} are missing from the end")
    if head.hash != walk.expected_prev:
        return ChainReport(checked, checked, f"row {checked} is not the one the head counts")
    return ChainReport(checked)


def recent(db: Session, limit: int = 100, action: str | None = None) -> list[AuditEvent]:
    """The newest events first, for the admin pages."""
    query = select(AuditEvent).order_by(col(AuditEvent.seq).desc()).limit(limit)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    return list(db.exec(query).all())
