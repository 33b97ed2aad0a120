"""Trusting the company CA and our own: chain, validity, clientAuth, and revocation that fails closed."""

from __future__ import annotations

import socket
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from certs import (
    Authority,
    CertificateRevokedError,
    CertState,
    CertStatus,
    HttpRevocationChecker,
    InvalidWireGuardKey,
    PublicationUrls,
    RevocationReason,
    RevocationUnknown,
    TrustStore,
    UntrustedCertificate,
    init_authority,
    issue_agent_with_generated_key,
    verify_client_certificate,
)
from certs.wgkey import wireguard_key_name
from tests.certs.company_ca import CompanyCa
from tests.certs.conftest import PASSPHRASE, LocalHttpServer, serve_ocsp

PEM = serialization.Encoding.PEM


@pytest.fixture
def company(now: datetime) -> CompanyCa:
    return CompanyCa.create(now)


@pytest.fixture
def trust(authority: Authority, company: CompanyCa) -> TrustStore:
    """Our chain plus the company chain, imported as an administrator would: root as DER, issuing CA as PEM."""
    return TrustStore.build(
        authority.chain, [company.root.public_bytes(serialization.Encoding.DER), company.issuing.public_bytes(PEM)]
    )


@pytest.fixture
def checker() -> HttpRevocationChecker:
    return HttpRevocationChecker(timeout_seconds=2.0)


def closed_port_url(path: str) -> str:
    """A loopback URL nobody listens on: connection refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


def serve_crl(server: LocalHttpServer, crl: x509.CertificateRevocationList) -> None:
    server.routes[("GET", "/corp.crl")] = lambda body: (
        "application/pkix-crl",
        crl.public_bytes(serialization.Encoding.DER),
    )


def test_trust_store_puts_roots_in_anchors_and_the_rest_in_intermediates(
    trust: TrustStore, authority: Authority, company: CompanyCa
) -> None:
    assert set(trust.anchors) == {authority.root_cert, company.root}
    assert set(trust.intermediates) == {authority.issuing_cert, company.issuing}


def test_company_certificate_is_verified_then_refused_once_its_crl_is_asked_again(
    trust: TrustStore,
    company: CompanyCa,
    checker: HttpRevocationChecker,
    now: datetime,
    http_server: LocalHttpServer,
) -> None:
    cert = company.user_certificate("zhang.wei@corp.example", now, crl_url=f"{http_server.base_url}/corp.crl")
    serve_crl(http_server, company.crl([], now, now + timedelta(hours=1)))
    identity = verify_client_certificate(cert, trust, now, checker)
    assert identity.upn == "zhang.wei@corp.example"
    assert identity.issuer == company.issuing.subject.rfc4514_string()
    assert identity.wireguard_public_key is None

    later = now + timedelta(seconds=20)
    serve_crl(http_server, company.crl([cert.serial_number], later, later + timedelta(hours=1)))
    verify_client_certificate(cert, trust, later, checker)  # younger than max_age (30 s): kept, not fetched
    assert http_server.requests == [("GET", "/corp.crl")]

    past_max_age = now + timedelta(seconds=31)  # long before the first CRL's nextUpdate (1 h)
    with pytest.raises(CertificateRevokedError, match="revoked"):
        verify_client_certificate(cert, trust, past_max_age, checker)
    assert len(http_server.requests) == 2


def test_a_kept_chain_is_built_again_once_its_issuing_ca_has_expired(
    trust: TrustStore,
    company: CompanyCa,
    checker: HttpRevocationChecker,
    now: datetime,
    http_server: LocalHttpServer,
) -> None:
    """The chain built at one sign-in is kept for the next ones only while every certificate in it is valid: a user
    certificate that outlives its issuing CA (valid 1,800 more days) is refused once the CA has expired."""
    cert = company.user_certificate(
        "zhang.wei@corp.example", now, crl_url=f"{http_server.base_url}/corp.crl", lifetime=timedelta(days=2000)
    )
    serve_crl(http_server, company.crl([], now, now + timedelta(days=1900)))
    verify_client_certificate(cert, trust, now, checker)
    assert verify_client_certificate(cert, trust, now + timedelta(days=1700), checker).upn == "zhang.wei@corp.example"
    with pytest.raises(UntrustedCertificate, match="not trusted"):
        verify_client_certificate(cert, trust, now + timedelta(days=1850), checker)


def test_unreachable_ocsp_and_no_crl_fails_closed(
    trust: TrustStore, company: CompanyCa, checker: HttpRevocationChecker, now: datetime
) -> None:
    cert = company.user_certificate("li.na@corp.example", now, ocsp_url=closed_port_url("/ocsp"))
    with pytest.raises(RevocationUnknown, match="cannot be established"):
        verify_client_certificate(cert, trust, now, checker)


def test_unreachable_crl_without_a_cached_copy_fails_closed(
    trust: TrustStore, company: CompanyCa, checker: HttpRevocationChecker, now: datetime
) -> None:
    cert = company.user_certificate("li.na@corp.example", now, crl_url=closed_port_url("/corp.crl"))
    with pytest.raises(RevocationUnknown):
        verify_client_certificate(cert, trust, now, checker)


def test_certificate_naming_no_revocation_source_fails_closed(
    trust: TrustStore, company: CompanyCa, checker: HttpRevocationChecker, now: datetime
) -> None:
    with pytest.raises(RevocationUnknown, match="no http:// OCSP responder"):
        verify_client_certificate(company.user_certificate("li.na@corp.example", now), trust, now, checker)


def test_crl_signed_by_someone_else_is_not_believed(
    trust: TrustStore,
    company: CompanyCa,
    checker: HttpRevocationChecker,
    now: datetime,
    http_server: LocalHttpServer,
) -> None:
    cert = company.user_certificate("li.na@corp.example", now, crl_url=f"{http_server.base_url}/corp.crl")
    impostor = CompanyCa.create(now)
    serve_crl(http_server, impostor.crl([], now, now + timedelta(hours=1)))
    with pytest.raises(RevocationUnknown, match="not signed by"):
        verify_client_certificate(cert, trust, now, checker)


def test_dead_ocsp_responder_falls_back_to_the_crl(
    trust: TrustStore,
    company: CompanyCa,
    checker: HttpRevocationChecker,
    now: datetime,
    http_server: LocalHttpServer,
) -> None:
    cert = company.user_certificate(
        "li.na@corp.example", now, crl_url=f"{http_server.base_url}/corp.crl", ocsp_url=closed_port_url("/ocsp")
    )
    serve_crl(http_server, company.crl([], now, now + timedelta(hours=1)))
    assert verify_client_certificate(cert, trust, now, checker).upn == "li.na@corp.example"


def test_our_agent_certificate_is_checked_against_our_ocsp_responder(
    trust: TrustStore,
    authority: Authority,
    checker: HttpRevocationChecker,
    now: datetime,
    wg_key: str,
    http_server: LocalHttpServer,
) -> None:
    statuses: dict[int, CertStatus] = {}
    url = serve_ocsp(http_server, authority, statuses, now)
    cert = issue_agent_with_generated_key(
        authority, "alice@corp.example", wg_key, now, urls=PublicationUrls(ocsp_url=url)
    ).cert
    statuses[cert.serial_number] = CertStatus(CertState.GOOD)
    assert verify_client_certificate(cert, trust, now, checker).wireguard_public_key == wg_key

    statuses[cert.serial_number] = CertStatus(CertState.REVOKED, now, RevocationReason.key_compromise)
    with pytest.raises(CertificateRevokedError, match="OCSP"):
        verify_client_certificate(cert, trust, now, checker)

    del statuses[cert.serial_number]  # "unknown" is no answer: with no CRL to fall back on, refuse
    with pytest.raises(RevocationUnknown, match="status unknown"):
        verify_client_certificate(cert, trust, now, checker)


def test_certificate_from_a_ca_nobody_imported_is_untrusted(
    trust: TrustStore, checker: HttpRevocationChecker, now: datetime, wg_key: str, tmp_path: Path
) -> None:
    stranger = init_authority(tmp_path / "stranger", PASSPHRASE, "Stranger Org", now)
    cert = issue_agent_with_generated_key(stranger, "eve@corp.example", wg_key, now).cert
    with pytest.raises(UntrustedCertificate, match="not trusted"):
        verify_client_certificate(cert, trust, now, checker, presented_chain=[stranger.issuing_cert])


def test_expired_certificate_is_untrusted(
    trust: TrustStore, company: CompanyCa, checker: HttpRevocationChecker, now: datetime
) -> None:
    cert = company.user_certificate("li.na@corp.example", now, lifetime=timedelta(days=2))
    with pytest.raises(UntrustedCertificate):
        verify_client_certificate(cert, trust, now + timedelta(days=3), checker)


def test_certificate_without_client_auth_is_untrusted(
    trust: TrustStore, company: CompanyCa, checker: HttpRevocationChecker, now: datetime
) -> None:
    cert = company.user_certificate("li.na@corp.example", now, usages=(ExtendedKeyUsageOID.EMAIL_PROTECTION,))
    with pytest.raises(UntrustedCertificate, match="clientAuth"):
        verify_client_certificate(cert, trust, now, checker)


def test_importing_something_that_is_not_a_certificate_is_refused(authority: Authority) -> None:
    with pytest.raises(UntrustedCertificate, match="no readable certificate"):
        TrustStore.build(authority.chain, [b"\x00\x01 definitely not a certificate"])


def _like(good: x509.Certificate) -> x509.CertificateBuilder:
    """A builder of a certificate with ``good``'s subject, issuer, key, serial and validity, and no extensions yet."""
    return (
        x509.CertificateBuilder()
        .subject_name(good.subject)
        .issuer_name(good.issuer)
        .public_key(good.public_key())
        .serial_number(good.serial_number)
        .not_valid_before(good.not_valid_before_utc)
        .not_valid_after(good.not_valid_after_utc)
    )


def test_certificate_with_a_malformed_extension_is_untrusted_not_a_crash(
    trust: TrustStore, company: CompanyCa, checker: HttpRevocationChecker, now: datetime
) -> None:
    good = company.user_certificate("li.na@corp.example", now)
    broken_template = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.311.21.7"), b"\x02\x01\x64")
    builder = _like(good).add_extension(broken_template, critical=False)
    cert = builder.sign(company.issuing_key, hashes.SHA256())
    with pytest.raises(UntrustedCertificate, match="malformed extension"):
        verify_client_certificate(cert, trust, now, checker)


def test_a_kept_chain_keeps_no_refusal_of_who_the_certificate_names_and_revocation_still_comes_first(
    trust: TrustStore,
    company: CompanyCa,
    checker: HttpRevocationChecker,
    now: datetime,
    http_server: LocalHttpServer,
) -> None:
    """Who a certificate names is read once and kept with its chain, but only once revocation has passed, as it was
    before any chain was kept: a certificate claiming two WireGuard keys is refused at every verification, never
    kept as passed, and once revoked is refused as revoked."""
    good = company.user_certificate("li.na@corp.example", now, crl_url=f"{http_server.base_url}/corp.crl")
    two_keys = x509.SubjectAlternativeName(
        [
            wireguard_key_name("xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="),
            wireguard_key_name("TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0="),
        ]
    )
    builder = _like(good)
    for extension in good.extensions:
        value = two_keys if isinstance(extension.value, x509.SubjectAlternativeName) else extension.value
        builder = builder.add_extension(value, critical=extension.critical)
    cert = builder.sign(company.issuing_key, hashes.SHA256())
    serve_crl(http_server, company.crl([], now, now + timedelta(hours=1)))
    for _ in range(2):
        with pytest.raises(InvalidWireGuardKey, match="2 WireGuard key URIs"):
            verify_client_certificate(cert, trust, now, checker)

    past_max_age = now + timedelta(seconds=31)
    serve_crl(http_server, company.crl([cert.serial_number], past_max_age, past_max_age + timedelta(hours=1)))
    with pytest.raises(CertificateRevokedError, match="revoked"):
        verify_client_certificate(cert, trust, past_max_age, checker)
