"""Every client certificate the TLS layer can parse reaches the application, which refuses the bad ones in words a
person can act on (no internal URL, no errno) and audits each refusal.

The gateway terminates TLS itself (uvicorn with ``ClientCertificateConfig``); the client is httpx presenting a real
certificate and key in the handshake. Before, OpenSSL cut these handshakes with an alert: no page, no audit row.
"""

import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import Engine
from sqlmodel import col, select

from certs.authority import init_authority
from certs.identity import upn_other_name
from certs.server import issue_server_certificate
from gateway.app import create_app
from gateway.audit.models import AuditEvent
from gateway.db import session_scope
from gateway.directory import BuiltinDirectory
from gateway.pki.service import Actor
from gateway.pki.trust import import_company_ca
from gateway.settings import load_settings
from gateway.web.tls import tls_options
from tests.certs.company_ca import CompanyCa
from tests.support.portal import csrf_of, page_error
from tests.support.server import serving

PASSWORD = "zhang-wei-pw"
PEM = serialization.Encoding.PEM


@dataclass
class HttpsPortal:
    base_url: str
    engine: Engine
    company: CompanyCa
    tmp_path: Path

    def client(self, cert: x509.Certificate, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> httpx.Client:
        cert_file, key_file = self.tmp_path / "client.crt", self.tmp_path / "client.key"
        cert_file.write_bytes(cert.public_bytes(PEM))
        key_file.write_bytes(key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        context = ssl.create_default_context(cafile=str(self.tmp_path / "root.pem"))  # the portal's server is ours
        context.load_cert_chain(cert_file, key_file)
        return httpx.Client(base_url=self.base_url, verify=context, timeout=10)


def _pem_file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.fixture
def portal(tmp_path: Path, db_url: str, engine: Engine) -> Iterator[HttpsPortal]:
    settings = load_settings(data_dir=tmp_path, database_url=db_url, ca={"passphrase": "tls-test"})
    now = datetime.now(UTC)
    authority = init_authority(settings.ca_directory, "tls-test", "Corp Example", now)
    company = CompanyCa.create(now)
    with session_scope(engine) as db:
        chain = b"".join(c.public_bytes(PEM) for c in (company.issuing, company.root))
        import_company_ca(db, "Corp AD CS", chain, actor=Actor("test"), now=now)
    directory = BuiltinDirectory(settings.directory_settings)
    directory.add_user("zhang.wei", PASSWORD, groups=["SOHO-Agents"], display_name="Zhang Wei")
    server = issue_server_certificate(authority, ["localhost"], [ip_address("127.0.0.1")], now)
    _pem_file(tmp_path / "root.pem", authority.root_cert.public_bytes(PEM))
    key_pem = server.key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    tls = tls_options(
        _pem_file(tmp_path / "server.crt", server.cert.public_bytes(PEM) + authority.issuing_cert.public_bytes(PEM)),
        _pem_file(tmp_path / "server.key", key_pem),
        _pem_file(tmp_path / "client-cas.pem", b"".join(c.public_bytes(PEM) for c in authority.chain)),
    )
    app = create_app(settings, engine=engine, authority=authority, directory=directory, run_jobs=False)
    with serving(app, tls=tls) as base_url:
        yield HttpsPortal(base_url, engine, company, tmp_path)


def _forged(upn: str, now: datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """Made by someone with no CA at all: self-signed, naming the victim's UPN, fit for client authentication."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, upn.split("@")[0])])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Corp Issuing CA")]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([upn_other_name(upn)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _sign_in(client: httpx.Client) -> httpx.Response:
    page = client.get("/login")
    assert page.status_code == 200  # the handshake went through: the person gets a page, not a browser error
    form = {"username": "zhang.wei", "password": PASSWORD, "csrf": csrf_of(page)}
    return client.post("/login", data=form, headers={"accept": "text/html"})


def _last_refusal(engine: Engine) -> AuditEvent:
    with session_scope(engine) as db:
        event = db.exec(
            select(AuditEvent).where(AuditEvent.action == "session.login").order_by(col(AuditEvent.seq).desc())
        ).first()
    assert event is not None
    return event


def _refused(portal: HttpsPortal, cert: x509.Certificate, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    with portal.client(cert, key) as client:
        answer = _sign_in(client)
    assert answer.status_code == 401
    message = page_error(answer)
    assert "http://" not in message and "Errno" not in message and "serial" not in message
    return message


def test_expired_certificate_reaches_the_login_and_is_refused_with_its_dates(portal: HttpsPortal) -> None:
    key, long_ago = rsa.generate_private_key(65537, 2048), datetime.now(UTC) - timedelta(days=40)
    expired = portal.company.user_certificate("zhang.wei@corp.example", long_ago, lifetime=timedelta(days=30), key=key)
    message = _refused(portal, expired, key)
    assert f"until {expired.not_valid_after_utc:%Y-%m-%d}, not now" in message
    refusal = _last_refusal(portal.engine)
    assert refusal.outcome == "certificate_out_of_validity" and refusal.actor == "zhang.wei"
    assert f"{expired.serial_number:X}" in refusal.detail


def test_forged_certificate_of_an_unknown_issuer_is_refused_and_audited(portal: HttpsPortal) -> None:
    forged, key = _forged("zhang.wei@corp.example", datetime.now(UTC))
    message = _refused(portal, forged, key)
    assert "issued by Corp Issuing CA, which this gateway does not trust" in message
    refusal = _last_refusal(portal.engine)
    assert refusal.outcome == "certificate_untrusted" and "is not trusted" in refusal.detail


def test_certificate_for_another_purpose_is_refused_and_audited(portal: HttpsPortal) -> None:
    key = rsa.generate_private_key(65537, 2048)
    server_only = portal.company.user_certificate(
        "zhang.wei@corp.example", datetime.now(UTC), usages=(ExtendedKeyUsageOID.SERVER_AUTH,), key=key
    )
    message = _refused(portal, server_only, key)
    assert "not made for signing in" in message
    assert _last_refusal(portal.engine).outcome == "certificate_wrong_purpose"


def test_unreachable_crl_is_explained_without_its_address_or_errno(portal: HttpsPortal) -> None:
    key = rsa.generate_private_key(65537, 2048)
    unreachable = portal.company.user_certificate(
        "zhang.wei@corp.example", datetime.now(UTC), crl_url="http://127.0.0.1:9/CertEnroll/corp.crl", key=key
    )
    message = _refused(portal, unreachable, key)
    assert "cannot be checked right now" in message
    refusal = _last_refusal(portal.engine)
    assert refusal.outcome == "certificate_status_unknown" and "127.0.0.1:9" in refusal.detail
