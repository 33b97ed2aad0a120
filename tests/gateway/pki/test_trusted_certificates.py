"""Which client certificates the gateway accepts: ours by our register, a company CA's by its own CRL."""

from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from certs.errors import CertificateRevokedError, UntrustedCertificate
from certs.revocation import HttpRevocationChecker
from gateway.db import session_scope
from gateway.pki import service
from gateway.pki.trust import verify_client
from tests.certs.company_ca import CompanyCa
from tests.certs.conftest import LocalHttpServer
from tests.gateway.pki.conftest import Pki
from tests.gateway.pki.test_cli_bad_input import WG_KEY


@pytest.fixture
def crl_server() -> LocalHttpServer:
    server = LocalHttpServer()
    server.thread.start()
    yield server  # type: ignore[misc]
    server.stop()


def test_own_certificate_is_judged_by_the_register(pki: Pki) -> None:
    with session_scope(pki.engine) as db:
        issued = service.issue_agent_certificate(
            db,
            pki.authority,
            upn="alice@corp.example",
            wireguard_key=WG_KEY,
            person_id=None,
            actor=pki.actor,
            now=pki.now,
            lifetime=pki.lifetime,
            urls=pki.urls,
        )
    with session_scope(pki.engine) as db:
        identity = verify_client(
            db, pki.authority, issued.cert, pki.now, HttpRevocationChecker(timeout_seconds=1)
        ).identity
        assert identity.upn == "alice@corp.example" and identity.wireguard_public_key == WG_KEY
        service.revoke(
            db,
            pki.authority,
            issued.row.serial,
            "affiliationChanged",
            actor=pki.actor,
            now=pki.now,
            crl_validity=pki.lifetime,
        )
    with session_scope(pki.engine) as db, pytest.raises(CertificateRevokedError):
        verify_client(db, pki.authority, issued.cert, pki.now, HttpRevocationChecker(timeout_seconds=1))


def test_company_ca_certificate_is_accepted_once_imported_and_refused_once_revoked(
    pki: Pki,
    run,
    crl_server: LocalHttpServer,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    company = CompanyCa.create(pki.now)
    crl_url = f"{crl_server.base_url}/corp.crl"
    user = company.user_certificate("zhang.wei@corp.example", pki.now, crl_url=crl_url)
    revoked: list[int] = []

    def current_crl(_body: bytes) -> tuple[str, bytes]:
        crl = company.crl(revoked, pki.now, pki.now + timedelta(hours=1))
        return "application/pkix-crl", crl.public_bytes(serialization.Encoding.DER)

    crl_server.routes[("GET", "/corp.crl")] = current_crl
    with session_scope(pki.engine) as db, pytest.raises(UntrustedCertificate):
        verify_client(db, pki.authority, user, pki.now, HttpRevocationChecker(timeout_seconds=2))

    chain = tmp_path / "corp-chain.pem"
    chain.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (company.issuing, company.root)))
    result = run("ca", "trust", str(chain), "--name", "Corp AD CS")
    assert result.exit_code == 0, result.output
    with session_scope(pki.engine) as db:
        identity = verify_client(db, pki.authority, user, pki.now, HttpRevocationChecker(timeout_seconds=2)).identity
    assert identity.upn == "zhang.wei@corp.example"

    revoked.append(user.serial_number)
    with session_scope(pki.engine) as db, pytest.raises(CertificateRevokedError):
        verify_client(db, pki.authority, user, pki.now, HttpRevocationChecker(timeout_seconds=2))
    assert run("ca", "trust", str(chain), "--name", "again").exit_code == 1  # already trusted: refused, clearly
