"""A company CA trusted while the portal runs reaches its live TLS layer without a restart: before the refresh a
browser with that CA's certificate is refused in the TLS handshake, after it the same server accepts it."""

import ssl
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from fastapi import FastAPI
from sqlalchemy import Engine

from certs.authority import Authority, init_authority
from gateway.db import session_scope
from gateway.pki.client_cas import ClientCaBundle
from gateway.pki.service import Actor, issue_server, publication_urls
from gateway.pki.trust import import_company_ca
from gateway.web.tls import tls_options
from tests.certs.company_ca import CompanyCa
from tests.support.server import free_port

NOW = datetime.now(UTC)


def _company_client(company: CompanyCa, folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "zhang.wei")]))
        .issuer_name(company.issuing.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(company.issuing_key, hashes.SHA256())
    )
    (folder / "client.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "client.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return folder / "client.crt", folder / "client.key"


def _server_files(db_engine: Engine, authority: Authority, folder: Path) -> tuple[Path, Path]:
    with session_scope(db_engine) as db:
        issued = issue_server(
            db, authority, dns_names=["localhost"], ip_addresses=["127.0.0.1"], actor=Actor("test"), now=NOW,
            lifetime=timedelta(days=30), urls=publication_urls("https://127.0.0.1"),
        )  # fmt: skip
    assert issued.key is not None
    (folder / "portal.crt").write_bytes(issued.cert.public_bytes(serialization.Encoding.PEM))
    (folder / "portal.key").write_bytes(
        issued.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return folder / "portal.crt", folder / "portal.key"


def test_a_company_ca_trusted_while_serving_is_accepted_without_restart(engine: Engine, tmp_path: Path) -> None:
    authority = init_authority(tmp_path / "ca", "client-cas-test-passphrase", "Corp Example", NOW)
    company = CompanyCa.create(NOW)
    client_cert, client_key = _company_client(company, tmp_path)
    cert_file, key_file = _server_files(engine, authority, tmp_path)
    bundle = ClientCaBundle(engine, authority, tmp_path / "client-cas.pem")
    assert bundle.refresh()
    app = FastAPI()
    app.get("/")(lambda: {"ok": True})
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning",
                            **tls_options(cert_file, key_file, bundle.path))  # type: ignore[arg-type]  # fmt: skip
    config.load()
    bundle.context = config.ssl
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    tls = ssl.create_default_context(cafile=tmp_path / "ca" / "root-ca.cert.pem")
    tls.load_cert_chain(client_cert, client_key)
    url = f"https://127.0.0.1:{config.port}/"
    try:
        with pytest.raises(httpx.HTTPError):  # the TLS layer does not know the company CA yet
            httpx.get(url, verify=tls, timeout=5)
        assert not bundle.refresh()  # nothing changed: the context is left alone

        chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (company.issuing, company.root))
        with session_scope(engine) as db:  # what `sohogw ca trust` does, from any process or node
            import_company_ca(db, "Corp AD CS", chain, actor=Actor("cli:admin", "local"), now=NOW)
        assert bundle.refresh()
        assert httpx.get(url, verify=tls, timeout=5).status_code == 200  # same server, no restart
        assert (
            b"Corp Root CA"
            in x509.load_pem_x509_certificates(bundle.path.read_bytes())[-1].subject.rfc4514_string().encode()
        )
    finally:
        server.should_exit = True
        thread.join(timeout=15)
