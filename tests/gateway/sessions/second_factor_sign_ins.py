"""Sign-ins with the password alone that wait for the second factor, without a web server: the second-factor tests
call the service functions the routes call, each in a transaction of its own as a request is."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pyotp
from sqlalchemy import Engine

from certs.revocation import HttpRevocationChecker
from gateway.adoption import LegacyAdoption
from gateway.db import session_scope
from gateway.directory import open_directory
from gateway.directory.settings import DirectorySettings
from gateway.policies.service import import_policy
from gateway.sessions import enrolment_codes
from gateway.sessions.login import LoginRequest, LoginServices, complete_second_factor, login
from gateway.sessions.models import HomeSession, SessionState
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


@contextmanager
def login_services(tmp_path: Path, engine: Engine) -> Iterator[LoginServices]:
    """sup1 (a supervisor) and admin1 (a security admin) in the built-in directory; both need a second factor."""
    path = tmp_path / "directory.json"
    write_builtin_directory(path, PASSWORDS, {"sup1": ["SOHO-Supervisors"], "admin1": ["SOHO-SecurityAdmins"]})
    with session_scope(engine) as db:
        import_policy(db, POLICY, actor="test", source="", now=T0)
    directory = open_directory(DirectorySettings(kind="builtin", builtin_file=path))
    try:
        yield LoginServices(directory, None, HttpRevocationChecker(), LIMITS, "node-1", LegacyAdoption())
    finally:
        directory.close()


def pending_session(engine: Engine, services: LoginServices, name: str) -> HomeSession:
    """A sign-in with the password, waiting for the second factor."""
    with session_scope(engine) as db:
        session = login(db, services, LoginRequest(name, PASSWORDS[name], "198.51.100.7"), T0).session
    assert session.state is SessionState.PENDING_SECOND_FACTOR
    return session


def enrolled_supervisor(engine: Engine, services: LoginServices) -> tuple[pyotp.TOTP, list[str]]:
    """sup1 with a confirmed second factor (its authenticator and recovery codes), enrolled at T0 with an enrolment
    code (a sign-in with the password alone needs one for its first enrolment)."""
    session = pending_session(engine, services, "sup1")
    with session_scope(engine) as db:
        code = enrolment_codes.issue(
            db, services.directory.find_account("sup1"), issued_by="test", issuer_person_id=None, now=T0
        )
    with session_scope(engine) as db:  # the enrolment-code form, then the second-factor form: two requests
        authenticator = pyotp.TOTP(enrolment_codes.redeem(db, session, code, limits=LIMITS, now=T0).secret)
    with session_scope(engine) as db:
        passed = complete_second_factor(db, session, authenticator.at(T0), limits=LIMITS, now=T0)
    return authenticator, passed.recovery_codes
