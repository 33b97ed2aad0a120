"""What a sign-in keeps from one sign-in to the next (the parsed policy, the trust store, the certificate's built
chain) never hides a change: a policy imported by another node, a revoked certificate and a company CA no longer
trusted each count at the very next sign-in, on SQLite and PostgreSQL."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import Engine, delete

from certs.authority import init_authority
from certs.revocation import HttpRevocationChecker
from gateway.adoption import LegacyAdoption
from gateway.db import session_scope
from gateway.directory import open_directory
from gateway.directory.settings import DirectorySettings
from gateway.pki import service as pki
from gateway.pki.models import TrustedAuthority
from gateway.pki.trust import import_company_ca
from gateway.policies.models import PolicyVersion
from gateway.policies.service import import_policy
from gateway.sessions.errors import LoginFailed
from gateway.sessions.login import LoginRequest, LoginServices, login
from gateway.sessions.throttle import ThrottleLimits
from tests.certs.company_ca import CompanyCa
from tests.support.portal import write_builtin_directory

PASSWORD = "agent-one-pw"
POLICY = """
version: 1
roles:
  agent: {require_client_certificate: true}
groups:
  SOHO-Agents: {roles: [agent]}
"""
POLICY_WITHOUT_AGENTS = POLICY.replace("SOHO-Agents", "SOHO-Supervisors")
WG_KEY = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="


@pytest.fixture
def services(tmp_path: Path, engine: Engine) -> LoginServices:
    """Our CA, the built-in directory with agent1 in SOHO-Agents, and the policy admitting agents."""
    directory_file = tmp_path / "directory.json"
    write_builtin_directory(directory_file, {"agent1": PASSWORD}, {"agent1": ["SOHO-Agents"]})
    now = datetime.now(UTC)
    authority = init_authority(tmp_path / "ca", "sign-in-test", "Corp Example", now)
    with session_scope(engine) as db:
        import_policy(db, POLICY, actor="test", source="", now=now)
    directory = open_directory(DirectorySettings(kind="builtin", builtin_file=directory_file))
    limits = ThrottleLimits(per_account=1000, per_source=1000)
    return LoginServices(directory, authority, HttpRevocationChecker(), limits, "node-1", LegacyAdoption())


def _our_certificate(engine: Engine, services: LoginServices) -> pki.Issued:
    assert services.authority is not None
    with session_scope(engine) as db:
        return pki.issue_agent_certificate(
            db,
            services.authority,
            upn="agent1@corp.example",
            account="agent1",
            wireguard_key=WG_KEY,
            person_id=None,
            actor=pki.Actor("test"),
            now=datetime.now(UTC),
            lifetime=timedelta(days=7),
            urls=pki.publication_urls("http://x"),
        )


def _sign_in(engine: Engine, services: LoginServices, certificate: x509.Certificate) -> str:
    """The sign-in's outcome: "success" or the refusal's reason."""
    try:
        with session_scope(engine) as db:
            login(db, services, LoginRequest("agent1", PASSWORD, "198.51.100.7", "", certificate), datetime.now(UTC))
    except LoginFailed as refused:
        return refused.reason
    return "success"


def test_a_policy_another_node_imported_counts_at_the_next_sign_in(engine: Engine, services: LoginServices) -> None:
    certificate = _our_certificate(engine, services).cert
    assert _sign_in(engine, services, certificate) == "success"
    with session_scope(engine) as db:  # the row another node's import writes; this process never parsed it
        db.add(
            PolicyVersion(version=2, document=POLICY_WITHOUT_AGENTS, created_by="node-2", created_at=datetime.now(UTC))
        )
    assert _sign_in(engine, services, certificate) == "no_role"


def test_a_certificate_revoked_after_a_sign_in_is_refused_at_the_next(engine: Engine, services: LoginServices) -> None:
    issued = _our_certificate(engine, services)
    assert _sign_in(engine, services, issued.cert) == "success"
    assert services.authority is not None
    with session_scope(engine) as db:
        pki.revoke(
            db,
            services.authority,
            issued.row.serial,
            "keyCompromise",
            actor=pki.Actor("test"),
            now=datetime.now(UTC),
            crl_validity=timedelta(days=1),
        )
    assert _sign_in(engine, services, issued.cert) == "certificate_revoked"


def test_a_company_ca_removed_from_the_trust_store_is_refused_at_the_next_sign_in(
    engine: Engine, services: LoginServices
) -> None:
    now = datetime.now(UTC)
    company = CompanyCa.create(now)
    certificate = company.user_certificate("agent1@corp.example", now)
    assert _sign_in(engine, services, certificate) == "certificate_untrusted"
    chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (company.issuing, company.root))
    with session_scope(engine) as db:
        import_company_ca(db, "Corp AD CS", chain, actor=pki.Actor("test"), now=now)
    # Trusted now, and its chain built: only revocation stands in the way (no CRL or OCSP named, so unknown).
    assert _sign_in(engine, services, certificate) == "certificate_status_unknown"
    with session_scope(engine) as db:  # removed by hand, as a compromised CA is (docs/pki.md)
        db.execute(delete(TrustedAuthority))
    assert _sign_in(engine, services, certificate) == "certificate_untrusted"
