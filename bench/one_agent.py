"""The sign-in the login benches repeat: one agent of a built-in directory with a certificate of ours and the default
policy, in a fresh database (`login_statements` counts its statements, `login_cpu` its CPU)."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from certs.authority import init_authority
from certs.revocation import HttpRevocationChecker
from gateway.adoption import LegacyAdoption
from gateway.db import session_scope
from gateway.directory import Directory, open_directory
from gateway.directory.settings import DirectorySettings
from gateway.pki import service as pki
from gateway.policies.service import import_policy
from gateway.sessions.login import LoginRequest, LoginServices
from gateway.sessions.throttle import ThrottleLimits
from policy import DEFAULT_POLICY_FILE
from tests.support.portal import write_builtin_directory

PASSWORD = "agent-one-password"  # noqa: S105 - the bench's own directory user


def one_agent(
    engine: Engine, scratch: Path, wrap: Callable[[Directory], Directory] = lambda directory: directory
) -> tuple[LoginServices, LoginRequest]:
    """The services and the request of agent1's sign-in (its certificate bound to it, as issued certificates are); the
    directory passed through ``wrap`` (a bench may keep its answers). Throttling never refuses."""
    now = datetime.now(UTC)
    authority = init_authority(scratch / "ca", "bench", "Bench", now)
    write_builtin_directory(scratch / "directory.json", {"agent1": PASSWORD}, {"agent1": ["SOHO-Agents"]})
    directory = open_directory(DirectorySettings(kind="builtin", builtin_file=scratch / "directory.json"))
    with session_scope(engine) as db:
        cert = pki.issue_agent_certificate(
            db,
            authority,
            upn="agent1@corp.example",
            account="agent1",
            wireguard_key="xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=",
            person_id=directory.find_account("agent1").person_id,
            actor=pki.Actor("bench"),
            now=now,
            lifetime=timedelta(days=1),
            urls=pki.publication_urls("http://bench"),
        ).cert
        import_policy(db, DEFAULT_POLICY_FILE.read_text(encoding="utf-8"), actor="bench", source="", now=now)
    limits = ThrottleLimits(10**9, 10**9)
    services = LoginServices(wrap(directory), authority, HttpRevocationChecker(), limits, "bench", LegacyAdoption())
    return services, LoginRequest("agent1", PASSWORD, "127.0.0.1", "bench", cert)
