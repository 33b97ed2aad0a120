"""Without a client certificate, a password is tried only for someone whose policy lets a password alone in.

Whoever's policy asks for a certificate (an agent; an account in no policy group; a name no account has) is refused
"a client certificate is required" before the password goes to the directory, right password or wrong, so the
answer tells a guesser nothing; so is a supervisor outside their shift. Such a refusal counts on the caller's
address only: a caller without the certificate cannot lock the person out. A password that is tried still counts
on the person. The directory is the real built-in one, wrapped to count the guesses that reach it.
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from certs.revocation import HttpRevocationChecker
from gateway.adoption import LegacyAdoption
from gateway.db import session_scope
from gateway.directory import open_directory
from gateway.directory.settings import DirectorySettings
from gateway.policies.service import import_policy
from gateway.sessions import throttle
from gateway.sessions.errors import LoginFailed
from gateway.sessions.login import LoginRequest, LoginServices, login
from gateway.sessions.models import LoginThrottle
from tests.gateway.sessions.guess_counting import CountingDirectory
from tests.support.portal import write_builtin_directory

NOW = datetime.now(UTC)
DAY_OFF = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[(NOW.weekday() + 3) % 7]
POLICY = f"""
version: 1
roles:
  supervisor: {{require_client_certificate: false}}
groups:
  SOHO-Agents: {{roles: [agent]}}
  SOHO-Supervisors: {{roles: [supervisor]}}
  SOHO-Night-Supervisors:
    roles: [supervisor]
    shifts: [{{time_zone: UTC, days: [{DAY_OFF}], start: "09:00", end: "10:00"}}]
"""
PASSWORDS = {"agent1": "agent-one-pw", "sup1": "sup-one-pw", "night1": "night-one-pw", "outsider": "outsider-pw"}
GROUPS = {
    "agent1": ["SOHO-Agents"],
    "sup1": ["SOHO-Supervisors"],
    "night1": ["SOHO-Night-Supervisors"],
    "outsider": [],
}
LIMITS = throttle.ThrottleLimits(per_account=3, per_source=100, window=timedelta(minutes=15))
CERTIFICATE_REQUIRED = ("certificate_missing", "a client certificate is required; import yours into the browser")


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[CountingDirectory]:
    path = tmp_path / "directory.json"
    write_builtin_directory(path, PASSWORDS, GROUPS)
    counting = CountingDirectory(open_directory(DirectorySettings(kind="builtin", builtin_file=path)))
    yield counting
    counting.close()


@pytest.fixture
def services(engine: Engine, directory: CountingDirectory) -> LoginServices:
    with session_scope(engine) as db:
        import_policy(db, POLICY, actor="test", source="", now=NOW)
    return LoginServices(directory, None, HttpRevocationChecker(), LIMITS, "node-1", LegacyAdoption())


def attempt(
    engine: Engine, services: LoginServices, name: str, password: str, source: str = "203.0.113.9"
) -> tuple[str, str]:
    """A sign-in without a certificate, committed as the route commits it: (reason, message) of the answer."""
    with session_scope(engine) as db:
        try:
            login(db, services, LoginRequest(name, password, source), NOW)
        except LoginFailed as refused:
            return refused.reason, refused.message
    return "signed_in", ""


@pytest.mark.parametrize("name", ["agent1", "outsider", "nobody"])
def test_right_and_wrong_passwords_get_the_same_answer_and_never_reach_the_directory(
    engine: Engine, services: LoginServices, directory: CountingDirectory, name: str
) -> None:
    right = PASSWORDS.get(name, "no-account-has-this-name")
    assert attempt(engine, services, name, "a-wrong-guess") == CERTIFICATE_REQUIRED
    assert attempt(engine, services, name, right) == CERTIFICATE_REQUIRED
    assert directory.binds == 0


def test_outside_the_shift_is_said_before_the_password_is_tried(
    engine: Engine, services: LoginServices, directory: CountingDirectory
) -> None:
    outside = attempt(engine, services, "night1", "a-wrong-guess")
    assert outside[0] == "outside_shift"
    assert attempt(engine, services, "night1", PASSWORDS["night1"]) == outside
    assert directory.binds == 0


def test_tries_without_a_certificate_count_on_the_address_never_on_the_person(
    engine: Engine, services: LoginServices, directory: CountingDirectory
) -> None:
    for i in range(3 * LIMITS.per_account):
        assert attempt(engine, services, "agent1", f"junk-{i}", "198.51.100.1") == CERTIFICATE_REQUIRED
    with session_scope(engine) as db:
        counts = {row.key: row.attempts for row in db.exec(select(LoginThrottle))}
    assert counts == {throttle.source_key("198.51.100.1"): 3 * LIMITS.per_account}
    # A password that is tried counts on the person: the supervisor's guesses still run out.
    for i in range(LIMITS.per_account):
        assert attempt(engine, services, "sup1", f"junk-{i}", f"198.51.100.{i + 10}")[0] == "directory.wrong_password"
    assert attempt(engine, services, "sup1", PASSWORDS["sup1"], "198.51.100.99")[0] == "throttled"
    assert directory.binds == LIMITS.per_account
