"""A throttle window: full, it refuses; once it has passed, the next attempt starts it again and counts as its first.
A right guess gets its attempt back. On SQLite and PostgreSQL (a reservation is one UPDATE whose CASEs both read the
row as it was; the give-back is one upsert of its own)."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event
from sqlmodel import Session

from gateway.sessions.errors import TooManyAttempts
from gateway.sessions.models import LoginThrottle
from gateway.sessions.throttle import ThrottleLimits, give_back, reserve

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LIMITS = ThrottleLimits(per_account=2, per_source=100, window=timedelta(minutes=15))
KEYS = [("person:p1", 2)]


def _row(db: Session) -> tuple[int, datetime]:
    row = db.get(LoginThrottle, "person:p1", populate_existing=True)
    assert row is not None
    return row.attempts, row.window_started_at.replace(tzinfo=UTC)


def test_a_full_window_refuses_until_it_has_passed_then_counts_from_one(db: Session) -> None:
    reserve(db, KEYS, T0, LIMITS, "full")
    reserve(db, KEYS, T0 + timedelta(minutes=1), LIMITS, "full")
    with pytest.raises(TooManyAttempts):
        reserve(db, KEYS, T0 + timedelta(minutes=14), LIMITS, "full")
    assert _row(db) == (2, T0)
    later = T0 + timedelta(minutes=15)
    reserve(db, KEYS, later, LIMITS, "full")
    assert _row(db) == (1, later)
    reserve(db, KEYS, later, LIMITS, "full")
    with pytest.raises(TooManyAttempts):
        reserve(db, KEYS, later, LIMITS, "full")
    assert _row(db) == (2, later)


def test_a_right_guess_gives_its_attempt_back_and_a_complete_sign_in_clears_the_count(db: Session) -> None:
    reserve(db, KEYS, T0, LIMITS, "full")
    reserve(db, KEYS, T0, LIMITS, "full")
    give_back(db, [*KEYS, ("source:203.0.113.9", 100)])
    assert _row(db) == (1, T0)
    reserve(db, KEYS, T0, LIMITS, "full")
    give_back(db, KEYS, forget_person="p1")  # a sign-in complete without a second factor
    assert _row(db) == (0, T0)


def test_a_give_back_on_a_key_without_a_row_counts_nothing(db: Session) -> None:
    """A right guess whose row was pruned meanwhile: giving back (and clearing) leaves nothing counted and no count
    below zero, and the next attempt starts a window of its own at one."""
    give_back(db, KEYS)
    give_back(db, KEYS, forget_person="p1")
    give_back(db, KEYS)
    reserve(db, KEYS, T0, LIMITS, "full")
    assert _row(db) == (1, T0)
    reserve(db, KEYS, T0, LIMITS, "full")
    with pytest.raises(TooManyAttempts):
        reserve(db, KEYS, T0, LIMITS, "full")


def test_a_reservation_refused_on_one_key_counts_on_none(db: Session) -> None:
    """The address is full: a guess naming the person and the address is refused and leaves the person's count as
    it was (PostgreSQL: its attempt on the person, committed with the statement, is taken back)."""
    person, source = ("person:p1", 2), ("source:203.0.113.9", 1)
    reserve(db, [source], T0, LIMITS, "full")
    for _ in range(3):
        with pytest.raises(TooManyAttempts):
            reserve(db, [person, source], T0, LIMITS, "full")
    reserve(db, [person], T0, LIMITS, "full")
    reserve(db, [person], T0, LIMITS, "full")
    with pytest.raises(TooManyAttempts):
        reserve(db, [person], T0, LIMITS, "full")


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_a_take_back_after_the_person_was_cleared_leaves_no_count_below_zero(db: Session) -> None:
    """PostgreSQL commits a reservation's attempt on the person before it finds the address full, and takes it back
    one statement later. A sign-in completed in between clears the person's count: the take-back must then leave it
    at 0, not -1 (a guesser holding the person's certificate would get one attempt over the limit from another
    address, each time the person signs in). SQLite rolls the whole reservation back instead."""
    person, source = ("person:p1", 2), ("source:203.0.113.9", 1)
    reserve(db, [source], T0, LIMITS, "full")
    reserve(db, [person], T0, LIMITS, "full")
    engine = db.get_bind()
    cleared: list[bool] = []

    def clear_before_the_take_back(conn, cursor, statement, parameters, context, executemany) -> None:
        if not cleared and statement.startswith("UPDATE login_throttle SET attempts=(login_throttle.attempts -"):
            cleared.append(True)
            give_back(db, [], forget_person="p1")  # the person's own sign-in completes, on another connection

    event.listen(engine, "before_cursor_execute", clear_before_the_take_back)
    try:
        with pytest.raises(TooManyAttempts):
            reserve(db, [person, source], T0, LIMITS, "full")
    finally:
        event.remove(engine, "before_cursor_execute", clear_before_the_take_back)
    assert cleared == [True]
    assert _row(db)[0] == 0
