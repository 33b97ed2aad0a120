"""The portal behind a real nginx configured as docs/settings.md says: the proxy proves itself with its secret, passes
any client certificate it can parse (``optional_no_ca``) for the gateway to judge, and a local process that skips
nginx cannot speak for a browser."""

import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import Engine
from sqlmodel import col, select

from certs.identity import upn_other_name
from certs.server import issue_server_certificate
from gateway.audit.models import AuditEvent
from gateway.db import session_scope
from gateway.pki import service as pki
from gateway.sessions.models import HomeSession
from tests.gateway.sessions.conftest import GROUPS, PASSWORDS, WG_KEYS
from tests.support import portal as whole
from tests.support.portal import PROXY_SECRET, Portal, csrf_of, page_error
from tests.support.server import free_port

pytestmark = pytest.mark.e2e
PEM = serialization.Encoding.PEM
NGINX_CONF = """\
daemon off;
master_process off;
user root;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{}}
http {{
    access_log off;
    client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy; fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {tmp}/portal.crt;
        ssl_certificate_key {tmp}/portal.key;
        ssl_verify_client optional_no_ca;
        location / {{
            proxy_pass {gateway};
            proxy_set_header Host $host;
            proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Sohogw-Proxy-Secret {secret};
        }}
    }}
}}
"""


@dataclass
class BehindNginx:
    portal: Portal
    url: str
    tmp: Path

    def browser(self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> httpx.Client:
        """A client on 127.0.0.2 (so nginx's $remote_addr is not the proxy's own) presenting ``cert`` to nginx."""
        (self.tmp / "client.crt").write_bytes(cert.public_bytes(PEM))
        (self.tmp / "client.key").write_bytes(
            key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        context = ssl.create_default_context(cafile=str(self.tmp / "root.pem"))
        context.load_cert_chain(self.tmp / "client.crt", self.tmp / "client.key")
        transport = httpx.HTTPTransport(local_address="127.0.0.2", verify=context)
        return httpx.Client(base_url=self.url, transport=transport, timeout=10)


@pytest.fixture
def behind_nginx(tmp_path: Path, db_url: str, engine: Engine) -> Iterator[BehindNginx]:
    with whole.serving_portal(
        tmp_path, db_url, engine, kind=Portal, passwords=PASSWORDS, groups=GROUPS, certified=WG_KEYS, trusted_proxy=True
    ) as portal:
        server = issue_server_certificate(portal.authority, ["localhost"], [ip_address("127.0.0.1")], datetime.now(UTC))
        (tmp_path / "portal.crt").write_bytes(
            server.cert.public_bytes(PEM) + portal.authority.issuing_cert.public_bytes(PEM)
        )
        (tmp_path / "portal.key").write_bytes(
            server.key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        (tmp_path / "root.pem").write_bytes(portal.authority.root_cert.public_bytes(PEM))
        port = free_port()
        conf = tmp_path / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=tmp_path, port=port, gateway=portal.base_url, secret=PROXY_SECRET))
        nginx = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(tmp_path)], stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    ours = ssl.create_default_context(cafile=str(tmp_path / "root.pem"))
                    httpx.get(f"https://127.0.0.1:{port}/login", verify=ours, timeout=1)
                    break
                except httpx.TransportError:
                    assert nginx.poll() is None and time.monotonic() < deadline, "nginx did not start"
                    time.sleep(0.1)
            yield BehindNginx(portal, f"https://127.0.0.1:{port}", tmp_path)
        finally:
            nginx.send_signal(signal.SIGQUIT)
            nginx.wait(timeout=10)


def _agent_certificate(portal: Portal) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    with session_scope(portal.engine) as db:
        issued = pki.issue_agent_certificate(
            db,
            portal.authority,
            upn="agent1@corp.example",
            account="agent1",
            wireguard_key=WG_KEYS["agent1"],
            person_id=None,
            actor=pki.Actor("test"),
            now=datetime.now(UTC),
            lifetime=timedelta(days=1),
            urls=pki.publication_urls("http://x"),
        )
    assert isinstance(issued.key, ec.EllipticCurvePrivateKey)
    return issued.cert, issued.key


def _sign_in(client: httpx.Client) -> httpx.Response:
    page = client.get("/login")
    form = {"username": "agent1", "password": PASSWORDS["agent1"], "csrf": csrf_of(page)}
    return client.post("/login", data=form, headers={"accept": "text/html"})


def _last(engine: Engine, action: str) -> AuditEvent:
    with session_scope(engine) as db:
        event = db.exec(
            select(AuditEvent).where(AuditEvent.action == action).order_by(col(AuditEvent.seq).desc())
        ).first()
    assert event is not None
    return event


def test_agent_signs_in_through_nginx_and_the_session_has_her_address(behind_nginx: BehindNginx) -> None:
    with behind_nginx.browser(*_agent_certificate(behind_nginx.portal)) as browser:
        answer = _sign_in(browser)
    assert answer.status_code == 303, page_error(answer)
    with session_scope(behind_nginx.portal.engine) as db:
        session = db.exec(select(HomeSession).where(HomeSession.login == "agent1")).one()
    assert session.source_ip == "127.0.0.2" and session.cert_serial is not None


def test_forged_certificate_passed_by_nginx_is_judged_by_the_gateway(behind_nginx: BehindNginx) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    forged = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "agent1")]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Corp Example Issuing CA")]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([upn_other_name("agent1@corp.example")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    with behind_nginx.browser(forged, key) as browser:
        answer = _sign_in(browser)
    assert answer.status_code == 401
    assert "which this gateway does not trust" in page_error(answer)
    assert _last(behind_nginx.portal.engine, "session.login").outcome == "certificate_untrusted"


def test_local_process_skipping_nginx_cannot_forward_a_victims_certificate(behind_nginx: BehindNginx) -> None:
    portal = behind_nginx.portal
    forged = {k: v for k, v in portal.proxy_headers("agent1").items() if k != "X-Sohogw-Proxy-Secret"}
    with portal.client() as local:
        answer = whole.sign_in(local, "agent1", PASSWORDS["agent1"], headers=forged)
    assert answer.status_code == 401
    assert _last(portal.engine, "session.login").outcome == "certificate_missing"
    assert _last(portal.engine, "proxy.forwarding_ignored").outcome == "proxy_secret_missing"
