"""A sprayer cannot escape the per-address limit by rotating addresses in its own IPv6 /64.

An IPv6 home or host is handed a whole /64 and may use any address in it, so the address count is kept per /64;
an IPv4 address that arrives IPv4-mapped (``::ffff:a.b.c.d``, as a dual-stack socket reports it) counts as itself.
Each guess goes through the real login with the built-in directory: a password spray over several supervisors
(whose policy lets a password alone in), one guess per person, from a new address each time.
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from certs.revocation import HttpRevocationChecker
from gateway.adoption import LegacyAdoption
from gateway.db import session_scope
from gateway.directory import open_directory
from gateway.directory.settings import DirectorySettings
from gateway.policies.service import import_policy
from gateway.sessions import throttle
from gateway.sessions.errors import LoginFailed
from gateway.sessions.login import LoginRequest, LoginServices, login
from tests.gateway.sessions.guess_counting import CountingDirectory
from tests.support.portal import write_builtin_directory

NOW = datetime.now(UTC)
POLICY = """
version: 1
roles:
  supervisor: {require_client_certificate: false}
groups:
  SOHO-Supervisors: {roles: [supervisor]}
"""
PEOPLE = [f"sup{i}" for i in range(12)]
LIMITS = throttle.ThrottleLimits(per_account=5, per_source=4, window=timedelta(minutes=15))


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[CountingDirectory]:
    path = tmp_path / "directory.json"
    write_builtin_directory(path, {p: f"{p}-right-pw" for p in PEOPLE}, {p: ["SOHO-Supervisors"] for p in PEOPLE})
    counting = CountingDirectory(open_directory(DirectorySettings(kind="builtin", builtin_file=path)))
    yield counting
    counting.close()


@pytest.fixture
def services(engine: Engine, directory: CountingDirectory) -> LoginServices:
    with session_scope(engine) as db:
        import_policy(db, POLICY, actor="test", source="", now=NOW)
    return LoginServices(directory, None, HttpRevocationChecker(), LIMITS, "node-1", LegacyAdoption())


def spray(engine: Engine, services: LoginServices, sources: list[str]) -> list[str]:
    """One wrong guess per person, the i-th from ``sources[i]``: the refusal reason of each."""
    reasons = []
    for person, source in zip(PEOPLE, sources, strict=False):
        with session_scope(engine) as db:
            try:
                login(db, services, LoginRequest(person, "Summer2026!", source), NOW)
            except LoginFailed as refused:
                reasons.append(refused.reason)
    return reasons


def test_rotating_addresses_inside_one_ipv6_64_meets_the_address_limit(
    engine: Engine, services: LoginServices, directory: CountingDirectory
) -> None:
    sources = [f"2001:db8:5:7::{i + 1:x}" for i in range(8)] + [f"2001:db8:5:7:{i + 1:x}::1" for i in range(4)]
    reasons = spray(engine, services, sources)
    assert reasons[: LIMITS.per_source] == ["directory.wrong_password"] * LIMITS.per_source
    assert set(reasons[LIMITS.per_source :]) == {"throttled"}
    assert directory.binds == LIMITS.per_source


def test_another_64_and_ipv4_mapped_addresses_count_apart_and_as_ipv4(
    engine: Engine, services: LoginServices, directory: CountingDirectory
) -> None:
    assert (
        spray(engine, services, ["2001:db8:5:7::1", "2001:db8:5:8::1", "2001:db8:5:9::1"])
        == ["directory.wrong_password"] * 3
    )
    assert throttle.source_key("::ffff:198.51.100.7") == throttle.source_key("198.51.100.7")
    assert throttle.source_key("2001:db8:5:7:aaaa::1") == throttle.source_key("2001:db8:5:7::2")
    assert throttle.source_key("2001:db8:5:7::1") != throttle.source_key("2001:db8:5:8::1")
    assert throttle.source_key("testclient") == "source:testclient"
