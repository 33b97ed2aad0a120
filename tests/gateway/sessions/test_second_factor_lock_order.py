"""A second factor's step takes its person's turn and the audit chain's lock before it clears the person's throttle
count (`throttle.forget`), the order a sign-in's give-back takes them in (`sessions.service.audit_opening`): in the
other order a second factor holding the person's row while it waits for the turn and a sign-in holding the turn while
it waits for the row deadlock (PostgreSQL ends one of them: a person with the right code or password refused)."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from sqlmodel import Session

from gateway.db import session_scope
from gateway.sessions import throttle
from gateway.sessions.login import complete_second_factor
from gateway.sessions.models import HomeSession
from tests.gateway.sessions.second_factor_sign_ins import (
    LIMITS,
    T0,
    enrolled_supervisor,
    login_services,
    pending_session,
)


def _turns_held_while_waiting_on_the_row(engine: Engine) -> int:
    """The advisory locks (turns) held by the backend whose clearing of the throttle's row waits on a lock."""
    waiting = text(
        "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE login_throttle%' "
        "AND pid <> pg_backend_pid()"
    )
    held = text("SELECT count(*) FROM pg_locks WHERE pid = :pid AND locktype = 'advisory' AND granted")
    with engine.connect() as watcher:
        for _ in range(200):
            pid = watcher.execute(waiting).scalar()
            if pid is not None:
                return int(watcher.execute(held, {"pid": pid}).scalar_one())
            watcher.rollback()
            time.sleep(0.05)
    raise AssertionError("no second factor waited on the throttle's row")


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_a_second_factor_clears_the_persons_count_holding_its_turn(tmp_path: Path, engine: Engine) -> None:
    with login_services(tmp_path, engine) as services:
        authenticator, _ = enrolled_supervisor(engine, services)
        session = pending_session(engine, services, "sup1")
        later = T0 + timedelta(seconds=30)  # the next code: the enrolment's is good once

        at_new_token, go_on = threading.Event(), threading.Event()

        def hold_at_the_new_token(*args: Any) -> None:
            """The step, held after its reservation (which the row would otherwise stop) until the row is held."""
            if args[2].startswith("UPDATE home_session SET token_sha256") and not at_new_token.is_set():
                at_new_token.set()
                assert go_on.wait(10)

        def second_factor() -> None:
            with session_scope(engine) as db:
                pending = db.get(HomeSession, session.id)
                assert pending is not None
                complete_second_factor(db, pending, authenticator.at(later), limits=LIMITS, now=later)

        event.listen(engine, "before_cursor_execute", hold_at_the_new_token)
        with ThreadPoolExecutor(max_workers=1) as pool:
            passing = pool.submit(second_factor)
            with Session(engine) as other:
                try:
                    assert at_new_token.wait(10)
                    person_row = "UPDATE login_throttle SET attempts = attempts WHERE key = :key"
                    other.execute(text(person_row), {"key": throttle.person_key(session.person_id)})  # to its commit
                    go_on.set()
                    turns_held = _turns_held_while_waiting_on_the_row(engine)
                finally:
                    go_on.set()
                    other.commit()
            passing.result(timeout=10)
    assert turns_held == 1
