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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest
from sqlalchemy import Engine, event
from sqlmodel import Session, col, select

from certs.revocation import HttpRevocationChecker
from gateway.adoption import LegacyAdoption
from gateway.audit.models import AuditEvent
from gateway.cli.totp import HOST
from gateway.db import session_scope
from gateway.directory import Directory, open_directory
from gateway.directory.settings import DirectorySettings
from gateway.errors import GatewayError
from gateway.policies.service import import_policy
from gateway.sessions import enrolment_codes, totp
from gateway.sessions.login import LoginRequest, LoginServices, complete_second_factor, login
from gateway.sessions.models import HomeSession, SessionState, TotpSecret
from gateway.sessions.throttle import ThrottleLimits
from tests.support.portal import write_builtin_directory

POLICY = """
version: 1
roles:
  supervisor: {require_client_certificate: false, require_totp: true}
  security_admin: {require_client_certificate: false, require_totp: true}
groups:
  SOHO-Supervisors: {roles: [supervisor]}
  SOHO-SecurityAdmins: {roles: [security_admin]}
"""
PASSWORDS = {"sup1": "sup-one-pw", "admin1": "admin-one-pw"}
LIMITS = ThrottleLimits(per_account=50, per_source=50)
T0 = datetime.now(UTC)


@pytest.fixture
def services(tmp_path: Path, engine: Engine) -> Iterator[LoginServices]:
    path = tmp_path / "directory.json"
    write_builtin_directory(path, PASSWORDS, {"sup1": ["SOHO-Supervisors"], "admin1": ["SOHO-SecurityAdmins"]})
    with session_scope(engine) as db:
        import_policy(db, POLICY, actor="test", source="", now=T0)
    directory = open_directory(DirectorySettings(kind="builtin", builtin_file=path))
    yield LoginServices(directory, None, HttpRevocationChecker(), LIMITS, "node-1", LegacyAdoption())
    directory.close()


def pending_session(engine: Engine, services: LoginServices, name: str) -> HomeSession:
    """A sign-in with the password, waiting for the second factor."""
    with session_scope(engine) as db:
        session = login(db, services, LoginRequest(name, PASSWORDS[name], "198.51.100.7"), T0).session
    assert session.state is SessionState.PENDING_SECOND_FACTOR
    return session


def enrolled_supervisor(engine: Engine, services: LoginServices) -> tuple[pyotp.TOTP, list[str]]:
    """sup1 with a confirmed second factor (its authenticator and recovery codes), enrolled at T0."""
    session = pending_session(engine, services, "sup1")
    with session_scope(engine) as db:  # the enrolment page, then its form: two requests
        authenticator = pyotp.TOTP(totp.enrolment(db, session, T0).secret)
    with session_scope(engine) as db:
        passed = complete_second_factor(db, session, authenticator.at(T0), limits=LIMITS, now=T0)
    return authenticator, passed.recovery_codes


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
