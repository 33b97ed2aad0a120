"""The audit chain finds an altered, removed or reordered row, on SQLite and PostgreSQL."""

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Engine, delete, event, text, update
from sqlmodel import Session, col, select

from gateway.audit.models import AuditEvent
from gateway.audit.service import AuditEntry, event_hash, record, record_all, verify_chain
from gateway.db import keep_refusal, make_engine, session_scope


def _fill(engine: Engine, count: int) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with session_scope(engine) as db:
        for n in range(count):
            record(
                db,
                actor=f"admin{n % 3}",
                action="cert.issue",
                target=f"serial-{n}",
                outcome="success",
                source="127.0.0.1",
                detail={"n": n, "name": "张伟"},
                clock=lambda n=n: start + timedelta(seconds=n),
            )


def test_untouched_chain_verifies(engine: Engine) -> None:
    _fill(engine, 25)
    with session_scope(engine) as db:
        report = verify_chain(db)
    assert report.intact, report.problem
    assert report.rows_checked == 25


def test_rows_of_any_text_verify(engine: Engine) -> None:
    """On PostgreSQL a transaction's first row is hashed by the server (its fields as Python writes them in JSON,
    between the head's number and hash): any text hashes there as `verify_chain` hashes it again."""
    odd = 'quote " backslash \\ newline \n tab \t bell \x07 del \x7f 张伟 😀 \u2028 end'
    with session_scope(engine) as db:
        record(db, actor=odd, action="cert.issue", target=odd, outcome="success", source="::1", detail={odd: [odd]})
    with session_scope(engine) as db:
        record(db, actor="a", action="b", outcome="c")
        record(db, actor=odd, action="d", outcome="e", detail={"n": odd})
    with session_scope(engine) as db:
        report = verify_chain(db)
        actors = list(db.exec(select(AuditEvent.actor).order_by(col(AuditEvent.seq))).all())
    assert report.intact, report.problem
    assert actors == [odd, "a", odd]


def test_a_field_longer_than_its_column_or_not_text_is_hashed_as_it_is_stored(engine: Engine) -> None:
    """The hash covers the row as stored: a field over its column's length is cut (PostgreSQL refused the whole
    action; SQLite kept it whole) and a value that is not text is stored as its text, which SQLite read back and
    verified as "altered" when the number itself had been hashed."""
    long_actor, long_target = "a" * 300, "t" * 600
    with session_scope(engine) as db:
        record(db, actor=long_actor, action="cert.issue", target=long_target, outcome="success")
        record(db, actor="b", action="cert.issue", target=12345, outcome="success")  # type: ignore[arg-type]
    with session_scope(engine) as db:
        report = verify_chain(db)
        rows = db.exec(select(AuditEvent.actor, AuditEvent.target).order_by(col(AuditEvent.seq))).all()
    assert report.intact, report.problem
    assert [(len(actor), len(target)) for actor, target in rows] == [(255, 512), (1, 5)]
    assert rows[0][0].startswith("aaa") and rows[0][0].endswith("…") and rows[1][1] == "12345"


def test_a_nul_in_a_field_is_stored_visible_and_the_row_verifies(engine: Engine) -> None:
    """PostgreSQL refuses a NUL in text (the statement, the action and its row were lost): the row keeps it as the
    four characters ``\\x00``, on both databases, and the hash covers that; in the JSON detail it is ``\\u0000``."""
    with session_scope(engine) as db:
        record(db, actor="ag\x00ent", action="session.login", target="t\x00", outcome="refused", detail={"n": "\x00"})
    with session_scope(engine) as db:
        report = verify_chain(db)
        row = db.exec(select(AuditEvent)).one()
    assert report.intact, report.problem
    assert (row.actor, row.target, json.loads(row.detail)) == ("ag\\x00ent", "t\\x00", {"n": "\x00"})


def test_the_chain_verifies_whatever_the_time_zone_of_the_clock_and_of_the_database_session(
    engine: Engine, db_url: str
) -> None:
    """A clock in another zone, and a PostgreSQL session whose time zone is the server's own (initdb takes the
    host's): the times hashed and the times read back are both UTC, so the chain still verifies."""
    kolkata = timezone(timedelta(hours=5, minutes=30))
    if db_url.startswith("postgresql"):

        def in_kolkata(connection: Any, _record: object) -> None:
            with connection.cursor() as cursor:
                cursor.execute("SET TIME ZONE 'Asia/Kolkata'")
            connection.commit()

        event.listen(engine, "connect", in_kolkata)
        engine.dispose()  # the pooled connections were opened before the listener
    with session_scope(engine) as db:
        record(db, actor="a", action="b", outcome="c", clock=lambda: datetime(2026, 1, 1, 12, tzinfo=kolkata))
        record(db, actor="d", action="e", outcome="f", clock=lambda: datetime(2026, 1, 1, 13, tzinfo=kolkata))
    with session_scope(engine) as db:
        report = verify_chain(db)
    assert report.intact, report.problem


def test_altered_row_is_located(engine: Engine) -> None:
    _fill(engine, 10)
    with session_scope(engine) as db:
        db.execute(update(AuditEvent).where(col(AuditEvent.seq) == 7).values(outcome="failure"))
    with session_scope(engine) as db:
        report = verify_chain(db)
    assert report.first_bad_seq == 7
    assert "altered" in report.problem


def test_deleted_row_is_located(engine: Engine) -> None:
    _fill(engine, 10)
    with session_scope(engine) as db:
        db.execute(delete(AuditEvent).where(col(AuditEvent.seq) == 4))
    with session_scope(engine) as db:
        report = verify_chain(db)
    assert report.first_bad_seq == 4
    assert "missing" in report.problem


def test_deleted_tail_is_located(engine: Engine) -> None:
    _fill(engine, 10)
    with session_scope(engine) as db:
        db.execute(delete(AuditEvent).where(col(AuditEvent.seq) >= 9))
    with session_scope(engine) as db:
        report = verify_chain(db)
    assert report.first_bad_seq == 9


def test_a_chain_appended_to_while_it_is_verified_is_intact(engine: Engine) -> None:
    """A live cluster keeps appending while an admin verifies: an event committed after the walk has read the rows
    and before it reads the head was reported as "rows 26 to 26 are missing from the end" (seen in a two-node run)."""
    _fill(engine, 25)
    verifier = make_engine(engine.url.render_as_string(hide_password=False))
    appended: list[int] = []

    @event.listens_for(verifier, "before_cursor_execute")
    def append_once(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not appended and "FROM audit_head" in statement:
            with session_scope(engine) as other:
                record(other, actor="node-b", action="login", outcome="success")
            appended.append(1)

    try:
        with session_scope(verifier) as db:
            first = verify_chain(db)
        with session_scope(verifier) as db:
            second = verify_chain(db)
    finally:
        verifier.dispose()
    assert appended == [1]
    assert first.intact, first.problem
    assert first.rows_checked in (25, 26)
    assert second.intact and second.rows_checked == 26


def test_a_row_appended_past_the_head_is_located(engine: Engine) -> None:
    """A row written behind the gateway's back, linked and hashed right but without moving the head, is reported:
    no append leaves a row the head does not count."""
    _fill(engine, 10)
    with session_scope(engine) as db:
        last = db.exec(select(AuditEvent).where(col(AuditEvent.seq) == 10)).one()
        forged = AuditEvent(**{**last.model_dump(), "seq": 11, "prev_hash": last.hash, "actor": "x"})
        forged.hash = event_hash(forged)
        db.add(forged)
    with session_scope(engine) as db:
        report = verify_chain(db)
    assert (report.first_bad_seq, report.rows_checked) == (11, 11), report.problem
    assert report.problem == "rows 11 to 11 follow the head"


def test_reordered_rows_are_located(engine: Engine) -> None:
    """Swapping two rows' contents (keeping each row's own hash valid) breaks the links."""
    _fill(engine, 10)
    with session_scope(engine) as db:
        rows = {e.seq: e for e in db.exec(select(AuditEvent).where(col(AuditEvent.seq).in_([5, 6])))}
        five, six = rows[5].model_dump(), rows[6].model_dump()
        # Move both out of the way of the unique constraints, then write them back swapped.
        db.execute(update(AuditEvent).where(col(AuditEvent.seq) == 5).values(seq=1005, prev_hash="x", hash="y"))
        db.execute(update(AuditEvent).where(col(AuditEvent.seq) == 6).values(seq=1006, prev_hash="z", hash="w"))
        db.execute(update(AuditEvent).where(col(AuditEvent.seq) == 1005).values(**{**six, "seq": 5}))
        db.execute(update(AuditEvent).where(col(AuditEvent.seq) == 1006).values(**{**five, "seq": 6}))
    with session_scope(engine) as db:
        report = verify_chain(db)
    assert report.first_bad_seq == 5


def test_rolled_back_action_leaves_no_audit_row(engine: Engine) -> None:
    _fill(engine, 3)
    with Session(engine) as db:
        record(db, actor="a", action="cert.revoke", outcome="success")
        db.rollback()
    with session_scope(engine) as db:
        report = verify_chain(db)
    assert report.intact and report.rows_checked == 3


def test_concurrent_appenders_never_fork_the_chain(engine: Engine) -> None:
    """Several writers at once (as several gateway nodes would be) still make one unbroken chain."""

    def append(worker: int) -> None:
        for n in range(15):
            with session_scope(engine) as db:
                db.execute(text("SELECT 1"))
                record(db, actor=f"node{worker}", action="login", outcome="success", detail={"n": n})

    with ThreadPoolExecutor(max_workers=4) as pool:
        for finished in [pool.submit(append, worker) for worker in range(4)]:
            finished.result()  # re-raises a writer's error here
    with session_scope(engine) as db:
        report = verify_chain(db)
    assert report.intact, report.problem
    assert report.rows_checked == 60


def test_several_events_a_transaction_from_concurrent_appenders_make_one_chain(engine: Engine) -> None:
    """A transaction's later events follow its first without reading the head again (it holds the chain's lock);
    other transactions appending meanwhile must still find the head where the last commit left it."""

    def append(worker: int) -> None:
        for n in range(8):
            with session_scope(engine) as db:
                for step in range(3):
                    record(db, actor=f"node{worker}", action="login", outcome="success", detail={"n": n, "s": step})

    with ThreadPoolExecutor(max_workers=4) as pool:
        for finished in [pool.submit(append, worker) for worker in range(4)]:
            finished.result()
    with session_scope(engine) as db:
        report = verify_chain(db)
    assert report.intact, report.problem
    assert report.rows_checked == 96


def test_events_appended_together_by_concurrent_appenders_make_one_chain_in_order(engine: Engine) -> None:
    """Several events in one append (a take-over's ended sessions and the sign-in) are chained in the order given,
    on PostgreSQL hashed by the server row after row in one statement, while others append: the chain verifies,
    each append's rows follow each other, and a later event of the transaction follows the last of them."""
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    def append(worker: int) -> None:
        for n in range(6):
            with session_scope(engine) as db:
                entries = [
                    AuditEntry(f"node{worker}", "together", "success", detail={"n": n, "s": s}) for s in range(3)
                ]
                record_all(db, entries)
                record(db, actor=f"node{worker}", action="after", outcome="success", detail={"n": n})

    event.listen(engine, "before_cursor_execute", count)
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            for finished in [pool.submit(append, worker) for worker in range(4)]:
                finished.result()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    with session_scope(engine) as db:
        report = verify_chain(db)
        rows = db.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all()
    assert report.intact, report.problem
    assert report.rows_checked == 96
    for first in range(0, 96, 4):  # each transaction's four rows in a row: three together, then one after
        together, after = rows[first : first + 3], rows[first + 3]
        assert {row.actor for row in [*together, after]} == {together[0].actor}
        assert [json.loads(row.detail)["s"] for row in together] == [0, 1, 2]
        assert after.action == "after" and json.loads(after.detail)["n"] == json.loads(together[0].detail)["n"]
    if engine.dialect.name == "postgresql":  # the three rows in one statement, with the lock and the head
        appends = [statement for statement in statements if "INSERT INTO audit_event" in statement]
        assert len(appends) == 48


def test_appending_no_event_leaves_the_chain_as_it_was(engine: Engine) -> None:
    """A take-over that ended nothing and had no event of its own appends nothing: the head is not moved past the
    last row (which would read as rows removed from the end)."""
    _fill(engine, 2)
    with session_scope(engine) as db:
        record_all(db, [])
    with session_scope(engine) as db:
        report = verify_chain(db)
    assert report.intact, report.problem
    assert report.rows_checked == 2


def test_events_after_a_savepoint_follow_what_it_left(engine: Engine) -> None:
    """A savepoint rolled back takes its events and the head's move with it; one released keeps them. The events
    after either follow the head as it then stands, and the chain has no gap."""
    with session_scope(engine) as db:
        record(db, actor="a", action="first", outcome="success")
        with db.begin_nested() as rolled_back:
            record(db, actor="a", action="undone", outcome="success")
            rolled_back.rollback()
        record(db, actor="a", action="second", outcome="success")
        with db.begin_nested():
            record(db, actor="a", action="kept", outcome="success")
        record(db, actor="a", action="third", outcome="success")
        keep_refusal(db)  # a refusal commits mid-request
        record(db, actor="a", action="fourth", outcome="success")
    with session_scope(engine) as db:
        report = verify_chain(db)
        actions = list(db.exec(select(AuditEvent.action).order_by(col(AuditEvent.seq))).all())
    assert report.intact, report.problem
    assert actions == ["first", "second", "kept", "third", "fourth"]
