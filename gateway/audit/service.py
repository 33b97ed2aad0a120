"""Append to and verify the hash-chained audit log.

Each row's hash covers its own fields and the previous row's hash, so altering a row breaks its own hash, deleting one
leaves a gap in ``seq`` and a broken link, and swapping two breaks the links around them. ``verify_chain`` names the
first row where any of that happened.
"""

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from gateway.audit.models import AuditEvent, AuditHead
from gateway.clock import Clock, as_utc, utcnow

GENESIS_HASH = "0" * 64
VERIFY_BATCH = 1000


def _canonical(event: AuditEvent) -> bytes:
    fields = [
        event.seq,
        as_utc(event.at).isoformat(timespec="microseconds"),
        event.actor,
        event.action,
        event.target,
        event.outcome,
        event.source,
        event.detail,
        event.prev_hash,
    ]
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()


def event_hash(event: AuditEvent) -> str:
    return hashlib.sha256(_canonical(event)).hexdigest()


def _lock_head(db: Session) -> AuditHead:
    """Take the chain's write lock by bumping the head (made by the first migration, never created here)."""
    db.execute(update(AuditHead).where(col(AuditHead.id) == 1).values(seq=AuditHead.seq + 1))
    head = db.get(AuditHead, 1, populate_existing=True)
    if head is None:
        raise RuntimeError("the audit chain head is missing: run `sohogw db upgrade`")
    return head


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
) -> AuditEvent:
    """Append one event in the caller's transaction; it commits or rolls back with the action it records."""
    head = _lock_head(db)
    event = AuditEvent(
        seq=head.seq,
        at=as_utc(clock()),
        actor=actor,
        action=action,
        target=target,
        outcome=outcome,
        source=source,
        detail=json.dumps(dict(detail or {}), ensure_ascii=False, sort_keys=True, default=str),
        prev_hash=head.hash,
        hash="",
    )
    event.hash = event_hash(event)
    head.hash = event.hash
    db.add(event)
    db.add(head)
    db.flush()
    return event


@dataclass(frozen=True)
class ChainReport:
    """The result of a verification: ``first_bad_seq`` is None when the chain is whole."""

    rows_checked: int
    first_bad_seq: int | None = None
    problem: str = ""

    @property
    def intact(self) -> bool:
        return self.first_bad_seq is None


def _rows(db: Session) -> Iterator[AuditEvent]:
    last = 0
    while True:
        batch = db.exec(
            select(AuditEvent).where(AuditEvent.seq > last).order_by(col(AuditEvent.seq)).limit(VERIFY_BATCH)
        ).all()
        if not batch:
            return
        yield from batch
        last = batch[-1].seq


def verify_chain(db: Session) -> ChainReport:
    """Walk the chain from the first row and report the first altered, removed or reordered row."""
    expected_seq, expected_prev, checked = 1, GENESIS_HASH, 0
    for event in _rows(db):
        if event.seq != expected_seq:
            return ChainReport(checked, expected_seq, f"row {expected_seq} is missing (next row is {event.seq})")
        if event.prev_hash != expected_prev:
            return ChainReport(checked, event.seq, f"row {event.seq} does not follow row {event.seq - 1}")
        if event_hash(event) != event.hash:
            return ChainReport(checked, event.seq, f"row {event.seq} was altered (its hash does not match)")
        expected_seq, expected_prev, checked = expected_seq + 1, event.hash, checked + 1
    head = db.get(AuditHead, 1)
    if head is not None and (head.seq != checked or head.hash != expected_prev):
        return ChainReport(checked, checked + 1, f"rows {checked + 1} to {head.seq} are missing from the end")
    return ChainReport(checked)


def recent(db: Session, limit: int = 100, action: str | None = None) -> list[AuditEvent]:
    """The newest events first, for the admin pages."""
    query = select(AuditEvent).order_by(col(AuditEvent.seq).desc()).limit(limit)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    return list(db.exec(query).all())
