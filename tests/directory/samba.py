"""A throwaway Samba AD DC on 127.0.0.1, provisioned into a temp dir, with users in every account state.

Samba cannot move its LDAP ports (389/636), so only one DC per network namespace: this one runs in the current
namespace and refuses to start if something already listens there. Import `running_samba_dc` from other test
folders; `tests/directory/conftest.py` wraps it as the session fixture `samba_dc`.
"""

import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ldap3 import MODIFY_REPLACE, Connection, Server, Tls
from ldap3.utils.dn import escape_rdn

from gateway.directory.settings import DirectorySettings
from policy import DEFAULT_POLICY_FILE
from tests.directory.processes import start_process_group, stop_process_group

REALM = "SOHO.TEST"
NETBIOS = "SOHO"
BASE_DN = "DC=soho,DC=test"
CERT_NAME = "DC1.soho.test"  # Samba's self-made LDAPS certificate: CN=<host>.<realm>, no IP address in it
ADMIN_PASSWORD = "Adm1n-Pass-2026"
PASSWORD = "Agent-Passw0rd-2026"
SERVICE_ACCOUNT = "svc-sohogw"
LOCKOUT_THRESHOLD = 5

AGENT = "agent.ok"  # Team-A ∈ SOHO-Agents
SUPERVISOR = "super.visor"
CHINESE = "张伟"
SPECIAL_CN = "O*Brien (Ops) \\ Night"  # `*()\` in the CN, hence in the DN
SPECIAL_UPN = "o*brien(ops)@soho.test"
DISABLED = "user.disabled"
LOCKED = "user.locked"
PASSWORD_EXPIRED = "user.pwexpired"
MUST_CHANGE = "user.mustchange"
ACCOUNT_EXPIRED = "user.expired"
NIGHT_SHIFT = "user.nightshift"  # logonHours all zero: never allowed
WORKSTATION = "user.workstation"  # may log on only from NOWHERE
PROBE = "user.probe"  # target of wrong-password tests, so others do not approach the lockout threshold
MOVER = "user.mover"  # group changes

SAMBA_PACKAGES = "Debian packages samba-ad-dc, samba-ad-provision, ldb-tools"


class SambaUnavailable(RuntimeError):
    """The DC could not be started here; the message says why."""


def user_dn(cn: str) -> str:
    return f"CN={escape_rdn(cn)},CN=Users,{BASE_DN}"


def group_dn(name: str) -> str:
    return f"CN={escape_rdn(name)},CN=Users,{BASE_DN}"


def policy_by_dn() -> str:
    """The embedded default policy with its groups named as a company directory's policy names them: by DN."""
    text = DEFAULT_POLICY_FILE.read_text(encoding="utf-8")
    for name in ("SOHO-Agents", "SOHO-Supervisors", "SOHO-SecurityAdmins", "SOHO-HR"):
        text = text.replace(f"\n  {name}:\n", f'\n  "{group_dn(name)}":\n')
    return text


@dataclass
class SambaDC:
    root: Path
    ca_file: Path
    ldaps_url: str = "ldaps://127.0.0.1:636"
    ldap_url: str = "ldap://127.0.0.1:389"

    def tls(self) -> Tls:
        return Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(self.ca_file), valid_names=[CERT_NAME])

    def admin(self) -> Connection:
        """A bound LDAPS connection as Administrator, for seeding and for checking what the server holds."""
        server = Server(self.ldaps_url, tls=self.tls(), connect_timeout=5)
        return Connection(
            server, f"Administrator@{REALM.lower()}", ADMIN_PASSWORD, auto_bind=True, auto_referrals=False
        )

    def settings(self, **overrides: Any) -> DirectorySettings:
        """Directory settings for this DC with the service account."""
        values: dict[str, Any] = {
            "kind": "active_directory",
            "servers": [self.ldaps_url],
            "base_dn": BASE_DN,
            "bind_dn": f"{SERVICE_ACCOUNT}@{REALM.lower()}",
            "bind_password": PASSWORD,
            "netbios_domain": NETBIOS,
            "tls": {"ca_file": self.ca_file, "certificate_names": [CERT_NAME]},
        }
        values.update(overrides)
        return DirectorySettings.model_validate(values)


def _port_taken(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _run(*args: str) -> None:
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise SambaUnavailable(f"{' '.join(args[:3])} failed: {done.stderr[-2000:] or done.stdout[-2000:]}")


def _provision(root: Path) -> Path:
    """Provision the domain offline; returns the smb.conf. Also makes the password-expired user (see below)."""
    _run(
        "samba-tool", "domain", "provision", f"--targetdir={root}", f"--realm={REALM}", f"--domain={NETBIOS}",
        "--server-role=dc", "--dns-backend=NONE", "--use-rfc2307", f"--adminpass={ADMIN_PASSWORD}",
        "--host-name=DC1", "--option=interfaces=127.0.0.1", "--option=bind interfaces only=yes",
    )  # fmt: skip
    conf = root / "etc" / "smb.conf"
    text = conf.read_text().replace("[global]\n", (
        "[global]\n\tldap server require strong auth = no\n\tserver services = ldap\n"
        f"\tpid directory = {root}/run\n\tncalrpc dir = {root}/ncalrpc\n\tlog file = {root}/samba.log\n"
    ), 1)  # fmt: skip
    conf.write_text(text)
    sam = str(root / "private" / "sam.ldb")
    _run(
        "samba-tool", "domain", "passwordsettings", "set", "-H", sam, "--max-pwd-age=2", "--min-pwd-age=0",
        f"--account-lockout-threshold={LOCKOUT_THRESHOLD}", "--account-lockout-duration=30",
        "--reset-account-lockout-after=30",
    )  # fmt: skip
    # An old pwdLastSet is refused through LDAP and through sam.ldb's modules ("must be 0 or -1"), so it is
    # written straight into the domain partition while the DC is down. Max password age is 2 days: expired.
    _run("samba-tool", "user", "create", PASSWORD_EXPIRED, PASSWORD, "-H", sam)
    ldif = root / "pwd-last-set.ldif"
    ldif.write_text(f"dn: {user_dn(PASSWORD_EXPIRED)}\nchangetype: modify\nreplace: pwdLastSet\npwdLastSet: "
                    "133000000000000000\n")  # fmt: skip
    _run("ldbmodify", "-H", str(root / "private" / "sam.ldb.d" / f"{BASE_DN.upper()}.ldb"), str(ldif))
    return conf


def _add_user(conn: Connection, sam: str, cn: str | None = None, upn: str | None = None, **extra: Any) -> str:
    dn = user_dn(cn or sam)
    attributes = {
        "objectClass": ["user"],
        "sAMAccountName": sam,
        "userPrincipalName": upn or f"{sam}@{REALM.lower()}",
        "displayName": cn or sam,
        "mail": f"{sam}@corp.example",
        "telephoneNumber": "+86 571 8888 0000",
        "unicodePwd": f'"{PASSWORD}"'.encode("utf-16-le"),
        "userAccountControl": "512",
        **extra,
    }
    if not conn.add(dn, attributes=attributes):
        raise SambaUnavailable(f"could not add {dn}: {conn.result['message']}")
    return dn


def add_agents(dc: SambaDC, names: list[str]) -> None:
    """More agents, with the agents' password and in Team-A as ``AGENT`` is: a load of several people."""
    conn = dc.admin()
    members = [_add_user(conn, name) for name in names]
    conn.modify(group_dn("Team-A"), {"member": [("MODIFY_ADD", members)]})
    conn.unbind()


def _seed(dc: SambaDC) -> None:
    """Users in every state, nested groups, and a service account — through LDAP, as a real admin would."""
    conn = dc.admin()
    service = _add_user(conn, SERVICE_ACCOUNT)
    conn.modify(group_dn("Domain Admins"), {"member": [("MODIFY_ADD", [service])]})
    agent = _add_user(conn, AGENT)
    chinese = _add_user(conn, CHINESE, upn=f"{CHINESE}@{REALM.lower()}")
    special = _add_user(conn, "obrien", cn=SPECIAL_CN, upn=SPECIAL_UPN)
    supervisor = _add_user(conn, SUPERVISOR)
    for name in (PROBE, MOVER, LOCKED):
        _add_user(conn, name)
    _add_user(conn, DISABLED, userAccountControl="514")  # 512 | ACCOUNTDISABLE
    _add_user(conn, ACCOUNT_EXPIRED, accountExpires="130000000000000000")  # 2012-12-18
    _add_user(conn, WORKSTATION, userWorkstations="NOWHERE")
    night = _add_user(conn, NIGHT_SHIFT)
    conn.modify(night, {"logonHours": [(MODIFY_REPLACE, [bytes(21)])]})
    must_change = _add_user(conn, MUST_CHANGE)
    conn.modify(must_change, {"pwdLastSet": [(MODIFY_REPLACE, ["0"])]})
    for name, members in (
        ("Team-A", [agent, chinese, special]),
        ("SOHO-Agents", [group_dn("Team-A")]),
        ("SOHO-Supervisors", [supervisor]),
        ("SOHO-HR", []),
        ("SOHO-Security", []),
    ):
        attributes = {"objectClass": ["group"], "sAMAccountName": name} | ({"member": members} if members else {})
        if not conn.add(group_dn(name), attributes=attributes):
            raise SambaUnavailable(f"could not add group {name}: {conn.result['message']}")
    conn.unbind()
    for _ in range(LOCKOUT_THRESHOLD):  # real failed binds against the lockout policy
        failed = Connection(Server(dc.ldaps_url, tls=dc.tls()), f"{LOCKED}@{REALM.lower()}", "wrong-password")
        failed.open()
        failed.bind()
        failed.unbind()


def _wait_for_ldaps(process: subprocess.Popen[bytes], log: Path, deadline_seconds: float) -> None:
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SambaUnavailable(f"samba exited with {process.returncode}: {log.read_text()[-2000:]}")
        if _port_taken(636):
            return
        time.sleep(0.1)
    raise SambaUnavailable(f"samba did not listen on 636 within {deadline_seconds} s")


@contextmanager
def running_samba_dc() -> Iterator[SambaDC]:
    """Provision, start, seed; stop (whole process group) and delete everything on the way out."""
    if shutil.which("samba") is None or shutil.which("ldbmodify") is None:
        raise SambaUnavailable(f"install the {SAMBA_PACKAGES}")
    for port in (389, 636):
        if _port_taken(port):
            raise SambaUnavailable(f"127.0.0.1:{port} is already in use; only one Samba DC per network namespace")
    root = Path(tempfile.mkdtemp(prefix="sohogw-samba-"))
    process = None
    try:
        conf = _provision(root)
        log = root / "samba.out"
        process = start_process_group(["samba", "-i", "-s", str(conf)], log)
        _wait_for_ldaps(process, log, deadline_seconds=60)
        dc = SambaDC(root=root, ca_file=root / "private" / "tls" / "ca.pem")
        _seed(dc)
        yield dc
    finally:
        if process is not None:
            stop_process_group(process)
        with suppress(OSError):
            shutil.rmtree(root)
