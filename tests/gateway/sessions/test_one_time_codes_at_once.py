"""A one-time code submitted twice at the same moment is accepted once, on SQLite and PostgreSQL.

Two pending sessions of one person (the owner, and someone who has the password and saw the code) submit the same
TOTP code, recovery code or enrolment code in two threads, each in its own transaction as a request is. A barrier
on the engine holds each thread just before it sends its UPDATE of the code's row, until both have read the row
(the interleaving of a real race, with the real statements); then exactly one is accepted and the other is
refused and audited.
"""

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event
from sqlmodel import Session, col, select

from gateway.audit.models import AuditEvent
from gateway.cli.totp import HOST
from gateway.db import session_scope
from gateway.directory import Directory
from gateway.errors import GatewayError
from gateway.sessions import enrolment_codes
from gateway.sessions.login import LoginServices, complete_second_factor
from gateway.sessions.models import HomeSession, SessionState, TotpSecret
from tests.gateway.sessions.second_factor_sign_ins import (
    LIMITS,
    T0,
    enrolled_supervisor,
    login_services,
    pending_session,
)


@pytest.fixture
def services(tmp_path: Path, engine: Engine) -> Iterator[LoginServices]:
    with login_services(tmp_path, engine) as running:
        yield running


@contextmanager
def both_read_before_either_writes(engine: Engine, update_of: str) -> Iterator[None]:
    """Hold each of two threads just before its first ``UPDATE <update_of>`` until the other is there too."""
    barrier = threading.Barrier(2, timeout=20)
    held = threading.local()

    def hold(*args: Any) -> None:
        statement: str = args[2]
        if statement.startswith(f"UPDATE {update_of} ") and not getattr(held, "once", False):
            held.once = True
            barrier.wait()

    event.listen(engine, "before_cursor_execute", hold)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", hold)


def at_once(
    engine: Engine, update_of: str, sessions: list[HomeSession], submit: Callable[[Session, HomeSession], object]
) -> list[str]:
    """``submit`` in one thread per session, each in its own transaction that commits its refusal as the route
    does (the page is rendered, not raised): "accepted" or the refusal's reason, per session."""

    def one(session_id: str) -> str:
        with session_scope(engine) as db:
            session = db.get(HomeSession, session_id)
            assert session is not None
            try:
                submit(db, session)
            except GatewayError as refused:
                return refused.reason
        return "accepted"

    with both_read_before_either_writes(engine, update_of), ThreadPoolExecutor(len(sessions)) as threads:
        return list(threads.map(one, [session.id for session in sessions]))


def outcomes(engine: Engine, action: str) -> list[str]:
    with session_scope(engine) as db:
        rows = db.exec(select(AuditEvent).where(AuditEvent.action == action).order_by(col(AuditEvent.seq))).all()
    return sorted(row.outcome for row in rows)


def test_one_totp_code_submitted_twice_at_once_is_accepted_once(engine: Engine, services: LoginServices) -> None:
    authenticator, _ = enrolled_supervisor(engine, services)
    later = T0 + timedelta(minutes=2)
    code = authenticator.at(later)
    sessions = [pending_session(engine, services, "sup1") for _ in range(2)]

    def submit(db: Session, session: HomeSession) -> object:
        return complete_second_factor(db, session, code, limits=LIMITS, now=later)

    assert sorted(at_once(engine, "person_totp", sessions, submit)) == ["accepted", "second_factor_refused"]
    assert outcomes(engine, "session.second_factor") == ["refused", "success", "success"]  # with the enrolment's
    with session_scope(engine) as db:
        states = sorted(db.get_one(HomeSession, session.id).state for session in sessions)
    assert states == [SessionState.ACTIVE, SessionState.PENDING_SECOND_FACTOR]


def test_one_recovery_code_submitted_twice_at_once_is_accepted_once(engine: Engine, services: LoginServices) -> None:
    _, recovery_codes = enrolled_supervisor(engine, services)
    later = T0 + timedelta(minutes=2)
    sessions = [pending_session(engine, services, "sup1") for _ in range(2)]

    def submit(db: Session, session: HomeSession) -> object:
        return complete_second_factor(db, session, recovery_codes[0], limits=LIMITS, now=later)

    answers = at_once(engine, "person_totp_recovery_code", sessions, submit)
    assert sorted(answers) == ["accepted", "second_factor_refused"]
    assert outcomes(engine, "totp.recovery_code") == ["issued", "refused", "used"]
    assert outcomes(engine, "session.second_factor") == ["refused", "success", "success"]


def test_one_enrolment_code_redeemed_twice_at_once_is_redeemed_once(engine: Engine, services: LoginServices) -> None:
    directory: Directory = services.directory
    with session_scope(engine) as db:
        account = directory.find_account("admin1")
        code = enrolment_codes.issue(db, account, issued_by=HOST, issuer_person_id=None, now=T0)
    sessions = [pending_session(engine, services, "admin1") for _ in range(2)]

    def submit(db: Session, session: HomeSession) -> object:
        return enrolment_codes.redeem(db, session, code, limits=LIMITS, now=T0)

    answers = at_once(engine, "totp_enrolment_code", sessions, submit)
    assert sorted(answers) == ["accepted", "enrolment_code_refused"]
    assert outcomes(engine, "totp.enrolment_code") == ["issued", "redeemed", "refused_used"]
    winner = sessions[answers.index("accepted")]
    with session_scope(engine) as db:
        secret = db.get_one(TotpSecret, account.person_id)
    assert secret.enrolling_session == winner.id and secret.confirmed_at is None
