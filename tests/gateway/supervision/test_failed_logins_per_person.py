"""The failed-logins alert counts a person's failures whatever spelling of their name each guess used.

A guesser who alternates an account's name and its UPN (both accepted by the directory, both reaching one person's
throttle) must raise the alert as one spelling does; the alert names the account as the directory spells it. Each
guess goes through the real login with the built-in directory; names no account has still count per typed name.
"""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from certs.revocation import HttpRevocationChecker
from gateway.adoption import LegacyAdoption
from gateway.db import session_scope
from gateway.directory import open_directory
from gateway.directory.builtin import password_hash
from gateway.directory.settings import DirectorySettings
from gateway.policies.service import import_policy
from gateway.sessions import throttle
from gateway.sessions.errors import LoginFailed
from gateway.sessions.login import LoginRequest, LoginServices, login
from gateway.supervision.rules import failed_login_conditions
from gateway.supervision.settings import SupervisionSettings

NOW = datetime.now(UTC)
POLICY = """
version: 1
roles:
  supervisor: {require_client_certificate: false}
groups:
  SOHO-Supervisors: {roles: [supervisor]}
"""
SETTINGS = SupervisionSettings(failed_logins=4, failed_logins_window_minutes=15)


@pytest.fixture
def services(engine: Engine, tmp_path: Path) -> LoginServices:
    path = tmp_path / "directory.json"
    user = {"password_hash": password_hash("right-pw"), "upn": "wei.zhang@corp.example", "groups": ["SOHO-Supervisors"]}
    path.write_text(json.dumps({"users": {"zhang.wei": user}}))
    with session_scope(engine) as db:
        import_policy(db, POLICY, actor="test", source="", now=NOW)
    directory = open_directory(DirectorySettings(kind="builtin", builtin_file=path))
    limits = throttle.ThrottleLimits(per_account=50, per_source=50, window=timedelta(minutes=15))
    return LoginServices(directory, None, HttpRevocationChecker(), limits, "node-1", LegacyAdoption())


def _guesses(engine: Engine, services: LoginServices, spellings: list[str], count: int) -> None:
    for i in range(count):
        with session_scope(engine) as db, pytest.raises(LoginFailed):
            login(db, services, LoginRequest(spellings[i % len(spellings)], f"guess-{i}", "203.0.113.7"), NOW)


def _alerts(engine: Engine) -> list[tuple[str, str]]:
    with Session(engine) as db:
        return [(c.subject, c.message) for c in failed_login_conditions(db, NOW + timedelta(seconds=1), SETTINGS)]


@pytest.mark.parametrize(
    "spellings", [["zhang.wei"], ["zhang.wei", "wei.zhang@corp.example"], ["ZHANG.WEI", "Wei.Zhang@Corp.Example"]]
)
def test_every_spelling_of_one_person_counts_towards_one_alert(
    engine: Engine, services: LoginServices, spellings: list[str]
) -> None:
    _guesses(engine, services, spellings, SETTINGS.failed_logins - 1)
    assert _alerts(engine) == []
    _guesses(engine, services, spellings, 1)
    assert _alerts(engine) == [("zhang.wei", "4 failed logins for zhang.wei within 15 min")]


def test_a_name_no_account_has_counts_as_typed(engine: Engine, services: LoginServices) -> None:
    _guesses(engine, services, ["nobody.here"], SETTINGS.failed_logins)
    assert _alerts(engine) == [("nobody.here", "4 failed logins for nobody.here within 15 min")]
