"""Bad input to the CA answers with a clear error and writes nothing: no certificate row, no audit row, no file."""

from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from sqlmodel import func, select

from certs.errors import AuthorityExpired, PassphraseRequired
from certs.pkcs12 import export_pkcs12
from gateway.audit.models import AuditEvent
from gateway.db import session_scope
from gateway.directory import BuiltinDirectory
from gateway.pki import service
from gateway.pki.models import IssuedCertificate
from gateway.settings import get_settings
from tests.gateway.pki.conftest import Pki

WG_KEY = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
MALFORMED_CSR = b"-----BEGIN CERTIFICATE REQUEST-----\nnot base64\n-----END CERTIFICATE REQUEST-----\n"


def _counts(pki: Pki) -> tuple[int, int]:
    with session_scope(pki.engine) as db:
        certs = db.exec(select(func.count()).select_from(IssuedCertificate)).one()
        events = db.exec(select(func.count()).select_from(AuditEvent)).one()
    return certs, events


def _csr(key: object) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alice")])
    )
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.PEM)  # type: ignore[arg-type]


def _tampered_csr() -> bytes:
    der = bytearray(
        x509.load_pem_x509_csr(_csr(ec.generate_private_key(ec.SECP256R1()))).public_bytes(serialization.Encoding.DER)
    )
    der[-5] ^= 0x01  # inside the signature value: still parses, no longer verifies
    return x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize(
    ("csr", "message"),
    [
        (lambda: MALFORMED_CSR, "can be read"),
        (_tampered_csr, "signature"),
        (lambda: _csr(ed25519.Ed25519PrivateKey.generate()), "Ed25519"),
        (lambda: _csr(rsa.generate_private_key(65537, 1024)), "1024"),  # noqa: S505 (the point of the test)
    ],
    ids=["malformed", "bad-signature", "ed25519-key", "rsa-1024-key"],
)
def test_refused_csr_writes_nothing(pki: Pki, run, tmp_path: Path, csr, message: str) -> None:  # type: ignore[no-untyped-def]
    csr_file, out = tmp_path / "agent.csr", tmp_path / "agent.pem"
    csr_file.write_bytes(csr())
    before = _counts(pki)
    result = run(
        "cert", "sign-csr", str(csr_file), "--upn", "alice@corp.example", "--wireguard-key", WG_KEY, "--out", str(out)
    )
    assert result.exit_code == 1
    assert message in result.output
    assert _counts(pki) == before
    assert not out.exists()


def test_signed_csr_is_bound_to_the_upns_directory_entry_and_so_is_its_renewal(pki: Pki, run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    csr_file, out = tmp_path / "agent.csr", tmp_path / "agent.pem"
    csr_file.write_bytes(_csr(ec.generate_private_key(ec.SECP256R1())))
    before = _counts(pki)
    result = run(
        "cert", "sign-csr", str(csr_file), "--upn", "alice@corp.example", "--wireguard-key", WG_KEY, "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    assert _counts(pki) == (before[0] + 1, before[1] + 1)
    serial = service.serial_hex(x509.load_pem_x509_certificate(out.read_bytes()).serial_number)
    renewed = run("cert", "renew", serial, "--out", str(tmp_path / "renewed.pem"))
    assert renewed.exit_code == 0, renewed.output
    successor = service.serial_hex(
        x509.load_pem_x509_certificate((tmp_path / "renewed.pem").read_bytes()).serial_number
    )
    with session_scope(pki.engine) as db:
        people = {service.get_certificate(db, s).person_id for s in (serial, successor)}
    assert people == {BuiltinDirectory(pki.settings.directory_settings).find_account("alice").person_id}


def test_a_certificate_for_an_account_the_directory_does_not_know_is_refused(pki: Pki, run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    csr_file, out = tmp_path / "agent.csr", tmp_path / "agent.pem"
    csr_file.write_bytes(_csr(ec.generate_private_key(ec.SECP256R1())))
    before = _counts(pki)
    result = run(
        "cert", "sign-csr", str(csr_file), "--upn", "nobody@corp.example", "--wireguard-key", WG_KEY, "--out", str(out)
    )
    assert result.exit_code != 0
    assert "no account 'nobody@corp.example'" in result.output
    assert _counts(pki) == before
    assert not out.exists()


def test_revoking_unknown_serial_is_refused(pki: Pki, run) -> None:  # type: ignore[no-untyped-def]
    before = _counts(pki)
    result = run("cert", "revoke", "ABCDEF0123", "--reason", "keyCompromise")
    assert result.exit_code == 1
    assert "no certificate with serial ABCDEF0123" in result.output
    assert _counts(pki) == before


def test_pkcs12_without_passphrase_is_refused(pki: Pki, run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "alice.p12"
    empty = tmp_path / "passphrase"
    empty.write_text("\n")
    before = _counts(pki)
    result = run(
        "cert",
        "issue",
        "--upn",
        "alice@corp.example",
        "--wireguard-key",
        WG_KEY,
        "--out",
        str(out),
        "--p12-passphrase-file",
        str(empty),
    )
    assert result.exit_code != 0
    assert "passphrase" in result.output
    assert _counts(pki) == before and not out.exists()
    generated = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(PassphraseRequired):
        export_pkcs12(pki.authority.root_cert, generated, [], "")


def test_issuing_from_an_expired_ca_is_refused(pki: Pki) -> None:
    before = _counts(pki)
    with pytest.raises(AuthorityExpired), session_scope(pki.engine) as db:
        service.issue_agent_certificate(
            db,
            pki.authority,
            upn="alice@corp.example",
            wireguard_key=WG_KEY,
            person_id=None,
            actor=pki.actor,
            now=pki.now + timedelta(days=11 * 365),
            lifetime=pki.lifetime,
            urls=pki.urls,
        )
    assert _counts(pki) == before


def test_world_readable_ca_key_stops_the_gateway(pki: Pki, run) -> None:  # type: ignore[no-untyped-def]
    key = pki.settings.ca_directory / "issuing-ca.key.pem"
    key.chmod(0o644)
    result = run("cert", "list")  # does not need the CA: still works
    assert result.exit_code == 0
    result = run("crl")
    assert result.exit_code == 1
    assert str(key) in result.output


def test_wrong_ca_passphrase_is_refused(pki: Pki, run, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SOHOGW_CA__PASSPHRASE", "not the passphrase")
    get_settings.cache_clear()
    result = run("crl")
    assert result.exit_code == 1
    assert "passphrase" in result.output.lower()
