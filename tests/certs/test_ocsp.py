"""Our OCSP responder behind a real HTTP server, asked by the real `openssl ocsp` client."""

from __future__ import annotations

import subprocess
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from certs import (
    Authority,
    CertState,
    CertStatus,
    RevocationReason,
    build_ocsp_response,
    init_authority,
    issue_agent_with_generated_key,
)
from tests.certs.conftest import PASSPHRASE, LocalHttpServer, serve_ocsp, write_pem


def ask_openssl(url: str, authority: Authority, cert: x509.Certificate, tmp_path: Path) -> str:
    result = subprocess.run(
        [
            "openssl",
            "ocsp",
            "-url",
            url,
            "-issuer",
            str(write_pem(tmp_path / "issuing.pem", authority.issuing_cert)),
            "-cert",
            str(write_pem(tmp_path / "agent.pem", cert)),
            "-CAfile",
            str(write_pem(tmp_path / "root.pem", authority.root_cert)),
            "-timeout",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result.stdout + result.stderr


def test_openssl_ocsp_client_hears_good_then_revoked(
    authority: Authority, now: datetime, wg_key: str, tmp_path: Path, http_server: LocalHttpServer
) -> None:
    cert = issue_agent_with_generated_key(authority, "alice@corp.example", wg_key, now).cert
    statuses = {cert.serial_number: CertStatus(CertState.GOOD)}
    url = serve_ocsp(http_server, authority, statuses, now)

    good = ask_openssl(url, authority, cert, tmp_path)
    assert "Response verify OK" in good and "agent.pem: good" in good, good

    statuses[cert.serial_number] = CertStatus(CertState.REVOKED, now, RevocationReason.key_compromise)
    revoked = ask_openssl(url, authority, cert, tmp_path)
    assert "Response verify OK" in revoked and "agent.pem: revoked" in revoked, revoked
    assert "keyCompromise" in revoked
    assert http_server.requests == [("POST", "/ocsp"), ("POST", "/ocsp")]


def test_serial_the_gateway_does_not_know_is_unknown(
    authority: Authority, now: datetime, wg_key: str, tmp_path: Path, http_server: LocalHttpServer
) -> None:
    cert = issue_agent_with_generated_key(authority, "alice@corp.example", wg_key, now).cert
    answer = ask_openssl(serve_ocsp(http_server, authority, {}, now), authority, cert, tmp_path)
    assert "agent.pem: unknown" in answer, answer


def test_malformed_request_gets_malformed_request_response(authority: Authority, now: datetime) -> None:
    for garbage in (b"", b"\x30\x03\x02\x01\x01", b"not DER at all"):
        response = ocsp.load_der_ocsp_response(
            build_ocsp_response(authority, garbage, lambda serial: CertStatus(CertState.GOOD), now)
        )
        assert response.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_request_about_another_issuer_is_unauthorized(
    authority: Authority, now: datetime, wg_key: str, tmp_path: Path
) -> None:
    other = init_authority(tmp_path / "other-ca", PASSPHRASE, "Other Org", now)
    foreign = issue_agent_with_generated_key(other, "eve@corp.example", wg_key, now).cert
    request = ocsp.OCSPRequestBuilder().add_certificate(foreign, other.issuing_cert, hashes.SHA256()).build()
    seen: list[int] = []

    def lookup(serial: int) -> CertStatus:
        seen.append(serial)
        return CertStatus(CertState.GOOD)

    der = build_ocsp_response(authority, request.public_bytes(serialization.Encoding.DER), lookup, now)
    assert ocsp.load_der_ocsp_response(der).response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED
    assert seen == []  # the lookup was never consulted for a serial that is not ours


def test_response_is_signed_by_the_issuing_ca_and_echoes_the_nonce(
    authority: Authority, now: datetime, wg_key: str
) -> None:
    cert = issue_agent_with_generated_key(authority, "alice@corp.example", wg_key, now).cert
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(cert, authority.issuing_cert, hashes.SHA1())  # noqa: S303
        .add_extension(x509.OCSPNonce(b"0123456789abcdef"), critical=False)
        .build()
    )
    der = build_ocsp_response(
        authority, request.public_bytes(serialization.Encoding.DER), lambda serial: CertStatus(CertState.GOOD), now
    )
    response = ocsp.load_der_ocsp_response(der)
    assert response.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert (
        response.responder_key_hash
        == x509.SubjectKeyIdentifier.from_public_key(authority.issuing_key.public_key()).digest
    )
    assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"0123456789abcdef"
    assert response.certificates == []
