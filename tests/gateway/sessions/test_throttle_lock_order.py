"""Right guesses of one person from one address, many at once, never deadlock on the throttle's rows.

Reserving takes the person's row and then the address's; giving back and forgetting must take them in the same
order, or two sign-ins each hold one row and wait for the other (PostgreSQL detects it and fails one of them:
a person who typed the right password is refused). On SQLite the single writer serialises them anyway.
"""

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import select

from gateway.db import session_scope
from gateway.sessions import throttle
from gateway.sessions.models import LoginThrottle

LIMITS = throttle.ThrottleLimits(per_account=10_000, per_source=10_000, window=timedelta(minutes=15))


def test_many_right_guesses_at_once_all_get_through(engine: Engine) -> None:
    person = "0f2c8a52-3a1e-4c39-a5f5-6e1c1b0a9d11"
    keys = [(throttle.person_key(person), LIMITS.per_account), (throttle.source_key("10.0.0.1"), LIMITS.per_source)]
    failures: list[BaseException] = []

    def sign_ins() -> None:
        for _ in range(40):
            try:
                with session_scope(engine) as db:
                    throttle.reserve(db, keys, datetime.now(UTC), LIMITS, "too many")
                    throttle.give_back(db, keys, forget_person=person)
            except Exception as error:  # noqa: BLE001 - any failure, a deadlock among them, fails the test
                failures.append(error)

    threads = [threading.Thread(target=sign_ins) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    with session_scope(engine) as db:
        counts = {row.key: row.attempts for row in db.exec(select(LoginThrottle)).all()}
    assert counts == {throttle.person_key(person): 0, throttle.source_key("10.0.0.1"): 0}
