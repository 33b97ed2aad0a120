"""Nudges to reconcilers, delivered only after the transaction that caused them commits.

A reconciler must never act on state that may still roll back (a peer installed for a login that failed to commit),
so services call ``nudge_after_commit`` and the listeners run once the commit has happened. Rolled-back nudges are
dropped. The scheduled reconcile loops remain the safety net; a nudge only makes them act at once.

On PostgreSQL the nudge also goes to the other nodes: ``pg_notify`` is sent inside the transaction, and PostgreSQL
delivers it to every ``LISTEN``ing node only when that transaction commits (``gateway/nodes/listener.py``). The
transaction's nudges go in one statement (``send_nudges``) right before the commit, or within the statement that
takes the audit chain's lock (``unsent_notes``), whichever comes first: a sign-in asks for two, and each statement
is a round trip.
"""

import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from sqlalchemy import event, text
from sqlmodel import Session

log = logging.getLogger(__name__)

Listener = Callable[[str, Any], None]
_listeners: dict[str, list[Listener]] = defaultdict(list)
_PENDING = "sohogw.nudges"
_SENT = "sohogw.nudges_sent"
"""How many of the pending nudges have gone to PostgreSQL (the first ones, in order)."""
NOTIFY_CHANNEL = "sohogw_nudge"
ORIGIN = uuid.uuid4().hex
"""This process, named in its notifications, so its own listener does not deliver its nudges a second time."""


def listen(topic: str, listener: Listener) -> None:
    if listener not in _listeners[topic]:
        _listeners[topic].append(listener)


def unlisten(topic: str, listener: Listener) -> None:
    if listener in _listeners[topic]:
        _listeners[topic].remove(listener)


def nudge_after_commit(db: Session, topic: str, payload: Any = None) -> None:
    db.info.setdefault(_PENDING, []).append((topic, payload))


NOTIFYING_EACH = (
    "SELECT count(pg_notify(:channel, note)) AS sent FROM json_array_elements_text(CAST(:notes AS json)) AS note"
)
"""One notification per note, in the array's order (one row: how many), to run alone or inside another statement;
bound with ``notify_values``. The notes go as one JSON array, a string: psycopg dumps a list as a ``text[]`` with a
regular expression's pass over each element, ~30 µs of CPU at every sign-in."""
_NOTIFY_EACH = text(NOTIFYING_EACH)


def unsent_notes(db: Session) -> list[str]:
    """PostgreSQL: the nudges asked since the last send, as the other nodes read them, now counted as sent: the
    caller sends them, in this transaction, with ``NOTIFYING_EACH`` (delivered when the transaction commits; dropped
    if it rolls back, as is a savepoint's when the savepoint is). The audit log sends them within the statement
    that takes the chain's lock, which every appender waits for: no round trip of their own, under it or before it.

    None inside a savepoint: rolling it back would drop notifications sent in it for nudges asked before it, which
    stay pending; they go with the commit instead."""
    pending = db.info.get(_PENDING, [])
    sent = db.info.get(_SENT, 0)
    if sent == len(pending) or db.in_nested_transaction() or db.get_bind().dialect.name != "postgresql":
        return []
    db.info[_SENT] = len(pending)
    notes = []
    for topic, payload in pending[sent:]:
        try:
            notes.append(json.dumps({"topic": topic, "payload": payload, "origin": ORIGIN}))
        except TypeError:  # an in-process object (a directory handle): other nodes catch up on their interval pass
            continue
    return notes


def notify_values(notes: list[str]) -> dict[str, object]:
    return {"channel": NOTIFY_CHANNEL, "notes": json.dumps(notes)}


def send_nudges(db: Session) -> None:
    """PostgreSQL: send the unsent nudges (``unsent_notes``) in one statement of their own; before the commit."""
    notes = unsent_notes(db)
    if notes:
        db.execute(_NOTIFY_EACH, notify_values(notes))


def pending_mark(db: Session) -> int:
    """How many nudges wait for the commit now: a savepoint that is rolled back drops those after the mark."""
    return len(db.info.get(_PENDING, []))


def drop_pending_since(db: Session, mark: int) -> None:
    """Forget the nudges a rolled-back savepoint asked for (those from ``pending_mark`` on; none was sent)."""
    del db.info.get(_PENDING, [])[mark:]


def publish(topic: str, payload: Any = None) -> None:
    """Call this process's listeners of ``topic`` now: a committed local nudge, one another node committed (its
    ``NOTIFY``), or a change no transaction made (a WireGuard daemon that was restarted, its peers gone)."""
    for listener in list(_listeners[topic]):
        try:
            listener(topic, payload)
        except Exception:  # a failing listener must not fail the publisher; the worker's interval repairs
            log.exception("listener for %s failed", topic)


@event.listens_for(Session, "before_commit")
def _send(db: Session) -> None:
    send_nudges(db)


@event.listens_for(Session, "after_commit")
def _deliver(db: Session) -> None:
    if db.in_nested_transaction():
        return  # a savepoint was released (SQLAlchemy fires after_commit for it too): the real commit is to come
    db.info.pop(_SENT, None)
    for topic, payload in db.info.pop(_PENDING, []):
        publish(topic, payload)


@event.listens_for(Session, "after_rollback")
def _drop(db: Session) -> None:
    if db.in_nested_transaction():
        return  # a savepoint was rolled back: its owner drops what it asked for (``drop_pending_since``)
    db.info.pop(_PENDING, None)
    db.info.pop(_SENT, None)
