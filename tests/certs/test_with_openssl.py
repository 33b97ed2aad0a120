"""Our certificates, CRLs and PKCS#12 files as the real openssl command line sees them."""

from __future__ import annotations

import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from certs import (
    Authority,
    PassphraseRequired,
    RevocationReason,
    RevokedEntry,
    build_crl,
    export_pkcs12,
    issue_agent_with_generated_key,
)
from tests.certs.conftest import write_pem


def openssl(*args: str | Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", *map(str, args)],
        input=stdin.decode() if stdin else None,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def verify_with_crl(
    tmp_path: Path, authority: Authority, cert: x509.Certificate, crl: x509.CertificateRevocationList
) -> subprocess.CompletedProcess[str]:
    return openssl(
        "verify",
        "-CAfile",
        write_pem(tmp_path / "root.pem", authority.root_cert),
        "-untrusted",
        write_pem(tmp_path / "issuing.pem", authority.issuing_cert),
        "-CRLfile",
        write_pem(tmp_path / "issuing.crl.pem", crl),
        "-crl_check",
        "-purpose",
        "sslclient",
        write_pem(tmp_path / "agent.pem", cert),
    )


def test_openssl_accepts_a_fresh_agent_certificate_and_refuses_it_once_revoked(
    authority: Authority, now: datetime, wg_key: str, tmp_path: Path
) -> None:
    cert = issue_agent_with_generated_key(authority, "alice@corp.example", wg_key, now).cert
    other = issue_agent_with_generated_key(authority, "bob@corp.example", wg_key, now).cert
    next_update = now + timedelta(hours=12)
    clean = build_crl(
        authority, [RevokedEntry(other.serial_number, now, RevocationReason.key_compromise)], 1, now, next_update
    )
    accepted = verify_with_crl(tmp_path, authority, cert, clean)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert "agent.pem: OK" in accepted.stdout

    revoked = build_crl(
        authority,
        [
            RevokedEntry(other.serial_number, now, RevocationReason.key_compromise),
            RevokedEntry(cert.serial_number, now, RevocationReason.cessation_of_operation),
        ],
        2,
        now,
        next_update,
    )
    refused = verify_with_crl(tmp_path, authority, cert, revoked)
    assert refused.returncode != 0
    assert "certificate revoked" in refused.stdout + refused.stderr


def test_crl_lists_reason_codes_and_number(authority: Authority, now: datetime) -> None:
    crl = build_crl(
        authority,
        [RevokedEntry(7, now, RevocationReason.key_compromise), RevokedEntry(8, now)],
        42,
        now,
        now + timedelta(days=1),
    )
    assert crl.is_signature_valid(authority.issuing_key.public_key())
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 42
    seven = crl.get_revoked_certificate_by_serial_number(7)
    eight = crl.get_revoked_certificate_by_serial_number(8)
    assert seven is not None and eight is not None
    assert seven.extensions.get_extension_for_class(x509.CRLReason).value.reason is RevocationReason.key_compromise
    assert len(eight.extensions) == 0  # "unspecified" is written as an absent reasonCode (RFC 5280 §5.3.1)


def test_pkcs12_imports_with_openssl_using_the_passphrase(
    authority: Authority, now: datetime, wg_key: str, tmp_path: Path
) -> None:
    issued = issue_agent_with_generated_key(authority, "alice@corp.example", wg_key, now)
    p12 = tmp_path / "alice.p12"
    p12.write_bytes(export_pkcs12(issued.cert, issued.key, authority.chain, "s3cret passphrase"))
    result = openssl("pkcs12", "-info", "-in", p12, "-passin", "pass:s3cret passphrase", "-nodes")
    assert result.returncode == 0, result.stderr
    assert "PBES2" in result.stderr and "AES-256-CBC" in result.stderr
    assert result.stdout.count("BEGIN CERTIFICATE") == 3
    assert "BEGIN PRIVATE KEY" in result.stdout
    wrong = openssl("pkcs12", "-info", "-in", p12, "-passin", "pass:wrong", "-nodes")
    assert wrong.returncode != 0


def test_pkcs12_refuses_an_empty_passphrase(authority: Authority, now: datetime, wg_key: str) -> None:
    issued = issue_agent_with_generated_key(authority, "alice@corp.example", wg_key, now)
    with pytest.raises(PassphraseRequired):
        export_pkcs12(issued.cert, issued.key, authority.chain, "")
