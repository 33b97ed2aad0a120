"""Nudges between nodes over PostgreSQL LISTEN/NOTIFY: delivered once the transaction commits, never when it rolls
back (nor a rolled-back savepoint's), a transaction's in one statement, not twice to the process that sent them, and
again after the listener's connection was cut."""

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, event

from gateway.audit.service import record
from gateway.db import session_scope
from gateway.events import NOTIFY_CHANNEL, ORIGIN, drop_pending_since, nudge_after_commit, pending_mark
from gateway.nodes.listener import NudgeListener, psycopg_url

TOPIC = "session.ended"


class Inbox:
    def __init__(self) -> None:
        self.received: list[tuple[str, Any, float]] = []
        self.arrived = threading.Event()

    def deliver(self, topic: str, payload: Any) -> None:
        self.received.append((topic, payload, time.monotonic()))
        self.arrived.set()


def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not condition():
        time.sleep(0.01)
    return condition()


@pytest.fixture
def listeners(pg_url: str) -> Iterator[dict[str, tuple[NudgeListener, Inbox]]]:
    """Node b's listener (another process, as far as the origin says) and this process's own."""
    made = {}
    for name, origin in (("node_b", "another-process"), ("this_process", ORIGIN)):
        inbox = Inbox()
        listener = NudgeListener(pg_url, inbox.deliver, origin=origin)
        listener.start()
        made[name] = (listener, inbox)
    assert wait_for(lambda: all(listener.status.connected for listener, _ in made.values()))
    yield made
    for listener, _ in made.values():
        listener.stop()


@pytest.mark.postgres
def test_a_committed_nudge_reaches_the_other_node_and_a_rolled_back_one_never_does(
    pg_engine: Engine, pg_url: str, listeners: dict[str, tuple[NudgeListener, Inbox]]
) -> None:
    _, node_b = listeners["node_b"]
    _, here = listeners["this_process"]
    with pytest.raises(RuntimeError), session_scope(pg_engine) as db:
        nudge_after_commit(db, TOPIC, "rolled-back-session")
        raise RuntimeError("the request failed after the nudge")
    committed_at = time.monotonic()
    with session_scope(pg_engine) as db:
        nudge_after_commit(db, TOPIC, ["node-a", "seat-7"])
    assert node_b.arrived.wait(5)
    topic, payload, arrived_at = node_b.received[0]
    assert (topic, payload) == (TOPIC, ["node-a", "seat-7"])  # the rolled-back one, sent first, never came
    assert arrived_at - committed_at < 1.0
    assert len(node_b.received) == 1
    # This process delivered it itself after its commit. A marker from elsewhere, sent after it, proves that this
    # process's listener had the nudge in hand (one connection's notifications arrive in order) and passed it over.
    with psycopg.connect(psycopg_url(pg_url), autocommit=True) as other_node:
        note = json.dumps({"topic": "marker", "payload": None, "origin": "another-process"})
        other_node.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, note))
    assert here.arrived.wait(5)
    assert [topic for topic, _, _ in here.received] == ["marker"]


@pytest.mark.postgres
def test_a_cut_connection_is_reported_and_nudges_flow_again_after_the_reconnect(
    pg_engine: Engine, pg_url: str, listeners: dict[str, tuple[NudgeListener, Inbox]]
) -> None:
    listener, node_b = listeners["node_b"]
    with psycopg.connect(psycopg_url(pg_url), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'")
    assert wait_for(lambda: listener.status.drops >= 1)
    assert listener.status.last_error is not None
    assert wait_for(lambda: listener.status.connected)
    with session_scope(pg_engine) as db:
        nudge_after_commit(db, TOPIC, "after-the-cut")
    assert wait_for(lambda: any(payload == "after-the-cut" for _, payload, _ in node_b.received))


@contextmanager
def _notify_statements(engine: Engine) -> Iterator[list[str]]:
    """The statements carrying `pg_notify` that `engine` sends inside the block."""
    notifies: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "pg_notify" in statement:
            notifies.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield notifies
    finally:
        event.remove(engine, "before_cursor_execute", count)


@pytest.mark.postgres
def test_a_transactions_nudges_go_in_one_statement_and_a_rolled_back_savepoints_never_do(
    pg_engine: Engine, listeners: dict[str, tuple[NudgeListener, Inbox]]
) -> None:
    """Two nudges before a savepoint, one in it whose audit row would send what is pending: the savepoint is rolled
    back (as a refused form's is), so the other node gets the two from before it, and they went out together."""
    _, node_b = listeners["node_b"]
    with _notify_statements(pg_engine) as notifies, session_scope(pg_engine) as db:
        nudge_after_commit(db, TOPIC, "first")
        nudge_after_commit(db, TOPIC, "second")
        savepoint = db.begin_nested()
        mark = pending_mark(db)
        nudge_after_commit(db, TOPIC, "undone")
        record(db, actor="test", action="test.refused", outcome="refused")
        savepoint.rollback()
        drop_pending_since(db, mark)
    assert wait_for(lambda: len(node_b.received) >= 2)
    time.sleep(0.3)  # an "undone" nudge would have come with them
    assert [payload for _, payload, _ in node_b.received] == ["first", "second"]
    assert len(notifies) == 1


@pytest.mark.postgres
def test_nudges_before_an_audit_row_go_with_the_statement_taking_the_chains_lock(
    pg_engine: Engine, listeners: dict[str, tuple[NudgeListener, Inbox]]
) -> None:
    """The nudges asked before a transaction's first audit row cost no statement of their own: they go with the one
    that takes the chain's lock. One asked after it goes in a statement of its own. The other node gets each once,
    in order."""
    _, node_b = listeners["node_b"]
    with _notify_statements(pg_engine) as notifies, session_scope(pg_engine) as db:
        nudge_after_commit(db, TOPIC, "first")
        nudge_after_commit(db, TOPIC, "second")
        record(db, actor="test", action="test.done", outcome="success")
        nudge_after_commit(db, TOPIC, "third")
        record(db, actor="test", action="test.more", outcome="success")
    assert wait_for(lambda: len(node_b.received) >= 3)
    time.sleep(0.3)  # a nudge sent twice would have come with them
    assert [payload for _, payload, _ in node_b.received] == ["first", "second", "third"]
    assert len(notifies) == 2
    assert notifies[0].startswith("WITH locked_head AS") and "FOR UPDATE" in notifies[0]
    assert "INSERT INTO audit_event" in notifies[0]
    assert notifies[1].startswith("SELECT count(pg_notify")
