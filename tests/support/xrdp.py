"""A real RDP host for the Guacamole tests: Debian's xrdp with xorgxrdp, a local account whose session runs one app.

The nearest thing to a Windows RDS RemoteApp that runs here: xrdp-sesman starts an Xorg (xorgxrdp) session for the
account, and the account's `~/.xsession` execs only the published app, so the session is the app and ends with it.
xrdp listens on loopback with a certificate made for the test, so its fingerprint is known.

Run inside the test's own network namespace: xrdp-sesman's port (3350) and xrdp's socket directory are fixed.
"""

import hashlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from desktop_broker.x11.unix_accounts import processes_of
from tests.support.guacd import free_port

REPO = Path(__file__).resolve().parents[2]
XRDP_INI = Path("/etc/xrdp/xrdp.ini")
SESMAN_INI = Path("/etc/xrdp/sesman.ini")


@dataclass(frozen=True, slots=True)
class RdpHost:
    port: int
    username: str
    password: str
    fingerprint: str
    """``sha256:…`` of the certificate xrdp presents (what `cert-fingerprints` must name)."""
    root: Path

    def session_display(self) -> str | None:
        """The account's session display once sesman has started its Xorg (the Xorg's first argument; ":10" unless
        an earlier display's lock file is still there), else None."""
        uid = pwd.getpwnam(self.username).pw_uid
        for entry in Path("/proc").iterdir():
            try:
                if not entry.name.isdigit() or entry.stat().st_uid != uid:
                    continue
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[0].endswith(b"Xorg") and len(argv) > 1 and argv[1].startswith(b":"):
                return argv[1].decode()
        return None

    def x_env(self) -> dict[str, str]:
        display = self.session_display()
        assert display is not None, f"no Xorg session runs for {self.username}"
        home = pwd.getpwnam(self.username).pw_dir
        return {**os.environ, "DISPLAY": display, "XAUTHORITY": f"{home}/.Xauthority"}

    def x_run(self, argv: list[str], **kwargs: object) -> "subprocess.CompletedProcess[bytes]":
        """An X client on the account's session display (as root, with the account's cookie)."""
        return subprocess.run(argv, env=self.x_env(), capture_output=True, timeout=10, check=False, **kwargs)  # type: ignore[call-overload, no-any-return]

    def screen_rgb(self, width: int, height: int) -> bytes:
        shot = self.x_run(["import", "-window", "root", "-depth", "8", "rgb:-"])
        assert shot.returncode == 0 and len(shot.stdout) == width * height * 3, shot.stderr
        return shot.stdout  # type: ignore[no-any-return]


def _certificate(root: Path) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rds.test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (root / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (root / "key.pem").chmod(0o600)
    (root / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    return "sha256:" + ":".join(digest[i : i + 2] for i in range(0, 64, 2))


def _xrdp_ini(root: Path, port: int, security_layer: str) -> Path:
    replaced = {
        "port": f"tcp://127.0.0.1:{port}",
        "security_layer": security_layer,
        "certificate": str(root / "cert.pem"),
        "key_file": str(root / "key.pem"),
        "LogFile": str(root / "xrdp.log"),
        "EnableSyslog": "false",
    }
    lines, section = [], ""
    for line in XRDP_INI.read_text().splitlines():
        if line.startswith("["):
            section = line
        name = line.split("=", 1)[0]
        if section in ("[Globals]", "[Logging]") and name in replaced and "=" in line:
            line = f"{name}={replaced[name]}"
        lines.append(line)
    path = root / "xrdp.ini"
    path.write_text("\n".join(lines) + "\n")
    return path


def _account(app_argv: list[str]) -> tuple[str, str]:
    username = f"sohogw-rdp-{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(18)
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", username], check=True)
    # chpasswd reads the password from stdin: never in a process's argv.
    subprocess.run(["chpasswd"], input=f"{username}:{password}\n", text=True, check=True)
    home = Path(pwd.getpwnam(username).pw_dir)
    command = " ".join(f"'{part}'" for part in app_argv)
    # The session is the app: nothing else starts, and the session ends when the app does.
    (home / ".xsession").write_text(f"#!/bin/sh\ncd '{REPO}'\nexec {command}\n")
    (home / ".xsession").chmod(0o755)
    return username, password


def _end_account_session(uid: int) -> None:
    """Kill the account's processes and remove the X lock and socket its killed Xorg leaves behind (a stale
    /tmp/.X10-lock would push the next test's session to :11)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    os.kill(int(entry.name), signal.SIGKILL)
            except (FileNotFoundError, ProcessLookupError):
                continue
    deadline = time.monotonic() + 5
    while processes_of(uid) and time.monotonic() < deadline:  # userdel refuses while one is still there
        time.sleep(0.05)
    for leftover in [*Path("/tmp").glob(".X*-lock"), *Path("/tmp/.X11-unix").glob("X*")]:
        try:
            if leftover.stat().st_uid == uid:
                leftover.unlink()
        except FileNotFoundError:
            continue


@contextmanager
def xrdp_host(app_argv: list[str], security_layer: str = "tls") -> Iterator[RdpHost]:
    """xrdp + xrdp-sesman on loopback, one account whose session runs `app_argv` only; all removed afterwards.

    `security_layer` is xrdp.ini's: "tls" (the default) or "rdp" for a host offering only standard RDP security, as
    a downgrading host would; its certificate is made either way (the fingerprint the gateway may have learned).
    """
    for tool in ("xrdp", "xrdp-sesman"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed (Debian: xrdp xorgxrdp; deploy/packages-test.txt)")
    root = Path(tempfile.mkdtemp(prefix="sohogw-xrdp-", dir="/var/tmp"))
    port = free_port()
    fingerprint = _certificate(root)
    username, password = _account(app_argv)
    uid = pwd.getpwnam(username).pw_uid
    started: list[subprocess.Popen[bytes]] = []
    try:
        with (root / "sesman.out").open("wb") as log:
            started.append(subprocess.Popen(["xrdp-sesman", "-n", "-c", str(SESMAN_INI)], stdout=log, stderr=log))
            started.append(
                subprocess.Popen(
                    ["xrdp", "-n", "-c", str(_xrdp_ini(root, port, security_layer))], stdout=log, stderr=log
                )
            )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"xrdp did not listen: {(root / 'sesman.out').read_text()}") from None
                time.sleep(0.05)
        yield RdpHost(port, username, password, fingerprint, root)
    finally:
        for process in reversed(started):
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        _end_account_session(uid)
        subprocess.run(["userdel", "--remove", username], check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
