"""A throwaway OpenLDAP slapd on a random loopback port: temp slapd.conf, mdb, memberof overlay, StartTLS.

Import `running_slapd` from other test folders; `tests/directory/conftest.py` wraps it as the fixture `slapd`.
"""

import datetime
import ipaddress
import shutil
import socket
import ssl
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ldap3 import Connection, Server, Tls
from ldap3.core.exceptions import LDAPStartTLSError
from ldap3.utils.dn import escape_rdn

from gateway.directory.settings import DirectorySettings
from tests.directory.processes import start_process_group, stop_process_group

BASE_DN = "dc=soho,dc=example"
ADMIN_DN = f"cn=admin,{BASE_DN}"
ADMIN_PASSWORD = "Slapd-Admin-2026"
SERVICE_DN = f"cn=svc-sohogw,ou=services,{BASE_DN}"
PASSWORD = "Agent-Passw0rd-2026"
AGENT = "agent.ok"  # team-a ∈ soho-agents ∈ all-staff
CHINESE = "张伟"
SPECIAL = "o*brien(ops)\\night"  # `*()\` in the uid, hence in the DN
PROBE = "user.probe"
USER_TEMPLATE = f"uid={{user}},ou=people,{BASE_DN}"

_CONFIG = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
moduleload syncprov
pidfile {root}/slapd.pid
argsfile {root}/slapd.args
TLSCACertificateFile {root}/ca.pem
TLSCertificateFile {root}/server.pem
TLSCertificateKeyFile {root}/server.key
database mdb
maxsize 104857600
suffix "{base}"
rootdn "{admin}"
rootpw {admin_password}
directory {root}/db
overlay memberof
overlay syncprov
access to attrs=userPassword by self =xw by anonymous auth by * none
access to * by dn.exact="{service}" write by users read by * none
"""


def user_dn(uid: str) -> str:
    return f"uid={escape_rdn(uid)},ou=people,{BASE_DN}"


def group_dn(cn: str) -> str:
    return f"cn={escape_rdn(cn)},ou=groups,{BASE_DN}"


@dataclass
class Slapd:
    root: Path
    port: int
    ca_file: Path

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    def admin(self) -> Connection:
        """A bound connection as the rootdn, upgraded with StartTLS; a second connection when slapd refuses the
        first one's StartTLS (it answered a fresh connection's StartTLS with operationsError once in a full run)."""
        tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(self.ca_file))
        for attempt in (1, 2):
            conn = Connection(Server(self.url, tls=tls), ADMIN_DN, ADMIN_PASSWORD, auto_referrals=False)
            conn.open()
            try:
                conn.start_tls()
            except LDAPStartTLSError:
                conn.unbind()
                if attempt == 2:
                    raise
                continue
            conn.bind()
            return conn
        raise AssertionError("unreachable")

    def settings(self, **overrides: Any) -> DirectorySettings:
        values: dict[str, Any] = {
            "kind": "openldap",
            "servers": [self.url],
            "base_dn": BASE_DN,
            "bind_dn": SERVICE_DN,
            "bind_password": PASSWORD,
            "user_dn_template": USER_TEMPLATE,
            "tls": {"ca_file": self.ca_file, "start_tls": True},
        }
        values.update(overrides)
        return DirectorySettings.model_validate(values)


def _signed(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    signer: ec.EllipticCurvePrivateKey,
    now: datetime.datetime,
    extension: x509.ExtensionType,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(extension, critical=isinstance(extension, x509.BasicConstraints))
    )
    return builder.sign(signer, hashes.SHA256())


def _write_certificates(root: Path) -> None:
    """A CA and a server certificate for 127.0.0.1, so StartTLS is verified for real."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sohogw test slapd CA")])
    ca = _signed(ca_name, ca_name, ca_key.public_key(), ca_key, now, x509.BasicConstraints(ca=True, path_length=None))
    key = ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")])
    server_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    cert = _signed(server_name, ca_name, key.public_key(), ca_key, now, san)
    (root / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (root / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (root / "server.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _seed(conn: Connection) -> None:
    def add(dn: str, attributes: dict[str, Any]) -> None:
        if not conn.add(dn, attributes=attributes):
            raise RuntimeError(f"could not add {dn}: {conn.result['message']}")

    add(BASE_DN, {"objectClass": ["dcObject", "organization"], "o": "SOHO", "dc": "soho"})
    for ou in ("people", "groups", "services"):
        add(f"ou={ou},{BASE_DN}", {"objectClass": ["organizationalUnit"], "ou": ou})
    add(SERVICE_DN, {"objectClass": ["organizationalRole", "simpleSecurityObject"], "userPassword": PASSWORD})
    for uid in (AGENT, CHINESE, SPECIAL, PROBE, "super.visor"):
        add(user_dn(uid), {
            "objectClass": ["inetOrgPerson"], "uid": uid, "cn": uid, "sn": uid, "displayName": uid,
            "mail": "agent@corp.example", "telephoneNumber": "+86 571 8888 0001", "userPassword": PASSWORD,
        })  # fmt: skip
    for cn, members in (
        ("team-a", [user_dn(AGENT), user_dn(CHINESE), user_dn(SPECIAL)]),
        ("soho-agents", [group_dn("team-a")]),
        ("all-staff", [group_dn("soho-agents")]),
        ("soho-supervisors", [user_dn("super.visor")]),
    ):
        add(group_dn(cn), {"objectClass": ["groupOfNames"], "cn": cn, "member": members})


@contextmanager
def running_slapd(sync_provider: bool = True) -> Iterator[Slapd]:
    """Start slapd in the foreground as its own process group, seed it; stop it and delete its files after.
    ``sync_provider=False`` leaves out the syncprov overlay (no change subscription, as on many servers)."""
    if shutil.which("slapd") is None and not Path("/usr/sbin/slapd").exists():
        raise RuntimeError("install the Debian packages slapd and ldap-utils")
    root = Path(tempfile.mkdtemp(prefix="sohogw-slapd-"))
    process = None
    try:
        (root / "db").mkdir()
        _write_certificates(root)
        conf = root / "slapd.conf"
        config = (
            _CONFIG if sync_provider else _CONFIG.replace("moduleload syncprov\n", "").replace("overlay syncprov\n", "")
        )
        conf.write_text(config.format(root=root, base=BASE_DN, admin=ADMIN_DN, admin_password=ADMIN_PASSWORD,
                                       service=SERVICE_DN))  # fmt: skip
        port = _free_port()
        argv = ["/usr/sbin/slapd", "-d", "0", "-h", f"ldap://127.0.0.1:{port}/", "-f", str(conf)]
        process = start_process_group(argv, root / "slapd.out")
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"slapd exited: {(root / 'slapd.out').read_text()[-2000:]}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("slapd did not listen within 20 s")
            time.sleep(0.05)
        server = Slapd(root=root, port=port, ca_file=root / "ca.pem")
        admin = server.admin()
        _seed(admin)
        admin.unbind()
        yield server
    finally:
        if process is not None:
            stop_process_group(process)
        with suppress(OSError):
            shutil.rmtree(root)
