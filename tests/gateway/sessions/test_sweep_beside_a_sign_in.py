"""The session sweep and a sign-in never wait for each other in a circle, on PostgreSQL: a sign-in holds its throttle
rows (given back in its session row's statement) until its commit and waits for the audit chain before it; the sweep
holds the chain once it has audited an ended session and then prunes the throttle windows that have passed."""

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session

from gateway.audit.service import record
from gateway.db import make_engine, session_scope
from gateway.sessions import throttle
from gateway.sessions.login import LoginRequest, LoginServices, login
from tests.gateway.sessions.test_sign_in_sees_changes_at_once import (
    PASSWORD,
    _our_certificate,
    services,  # noqa: F401 (the fixture)
)
from tests.support.postgres import create_database

pytestmark = pytest.mark.postgres
WAITING_FOR_A_LOCK = (
    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
)


@pytest.fixture
def engine(postgres_admin_url: str, postgres_template: str) -> Iterator[Engine]:
    """PostgreSQL alone: SQLite has one writer, so a sign-in and the sweep take turns there."""
    url = create_database(postgres_admin_url, f"sohogw_{uuid.uuid4().hex[:12]}", template=postgres_template)
    made = make_engine(url)
    yield made
    made.dispose()


def test_the_sweep_prunes_beside_a_sign_in_waiting_for_the_audit_chain(engine: Engine, services: LoginServices) -> None:  # noqa: F811
    certificate = _our_certificate(engine, services).cert
    now = datetime.now(UTC)
    failures: list[BaseException] = []

    def sign_in() -> None:
        try:
            with session_scope(engine) as db:
                login(db, services, LoginRequest("agent1", PASSWORD, "198.51.100.7", "", certificate), now)
        except BaseException as error:  # noqa: BLE001 (reported by the assertion below)
            failures.append(error)

    with Session(engine) as sweep, engine.connect() as watcher:
        record(sweep, actor="system", action="session.end", outcome="idle", target="x")  # holds the chain's lock
        signer = threading.Thread(target=sign_in)
        signer.start()
        deadline = datetime.now(UTC) + timedelta(seconds=20)
        while watcher.execute(text(WAITING_FOR_A_LOCK)).scalar_one() == 0 and datetime.now(UTC) < deadline:
            watcher.rollback()
        # The sign-in's session row (and its give-back) is written: it waits for the chain. Its window has passed
        # by the sweep's clock (one that began ~15 minutes before: steady traffic, or an attacker's guess).
        try:
            throttle.prune(sweep, now + timedelta(minutes=16), services.limits)
            sweep.commit()
        except BaseException as error:  # noqa: BLE001
            failures.append(error)
            sweep.rollback()
        signer.join(30)
    assert not failures, [f"{type(error).__name__}: {str(error).splitlines()[0]}" for error in failures]
