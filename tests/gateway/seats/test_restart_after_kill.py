"""`kill -9` of a real `sohogw serve`, started by deploy/embedded.sh, in the middle of a storm of sign-ins and
seat launches; then a restart. Nothing of the old life runs on, the audit chain verifies, and every seat lease
the old life left is ended for a reason. The embedded start and the storm run under a `/proc` cmdline watcher
that fails on any secret the test knows (demo passwords, PKCS#12 and CA passphrases, the seats' X cookies).
"""

import json
import os
import pwd
import re
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from sqlmodel import Session, select

from desktop_broker.x11.cgroups import hierarchies
from desktop_broker.x11.egress import TABLE, chain_name
from desktop_broker.x11.users import OWNERS_DIR, end_earlier_lives
from gateway.audit.models import AuditEvent
from gateway.db import make_engine
from gateway.seats.models import SeatLease, SeatLeaseState
from gateway.vpn.uapi_wire import socket_path
from gateway.vpn.wireguard_go import socket_server_pid
from tests.gateway.seats.conftest import launch as launch_app
from tests.support.cmdline_watcher import leaked, watching_command_lines
from tests.support.portal import page_error, sign_in
from tests.support.server import free_port

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.geteuid() != 0, reason="the embedded start and seat confinement need root"),
]
REPO = Path(__file__).resolve().parents[3]
STORM_SECONDS = 3.0


def _environment(root: Path, port: int, vpn_interface: str) -> dict[str, str]:
    data = root / "data"
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("SOHOGW_")}
    return {
        **inherited,
        # Installing is the test command's work, done before the suite: a crash is the subject here, and pip inside
        # a test's network namespace would wait for a registry it cannot reach.
        "SOHOGW_EMBEDDED_INSTALL": "no",
        # The UAPI socket directory is shared by every namespace: a name of its own, so no other run's daemon (nor
        # one this run leaves) is taken for ours; a UDP port of its own for a run outside a namespace.
        "SOHOGW_VPN__INTERFACE": vpn_interface,
        "SOHOGW_VPN__LISTEN_PORT": str(_free_udp_port()),
        "SOHOGW_DATA_DIR": str(data),
        "SOHOGW_LISTEN_PORT": str(port),
        "SOHOGW_PUBLIC_URL": f"https://127.0.0.1:{port}",
        "SOHOGW_CA__PASSPHRASE_FILE": str(data / "ca-passphrase"),
        "SOHOGW_PORTAL__TLS_CERT_FILE": str(data / "portal.crt"),
        "SOHOGW_PORTAL__TLS_KEY_FILE": str(data / "portal.key"),
        # The storm is about a crash, not about the sign-in throttle, which would refuse it after 5 attempts.
        "SOHOGW_PORTAL__THROTTLE_PER_ACCOUNT": "100000",
        "SOHOGW_PORTAL__THROTTLE_PER_SOURCE": "100000",
        "SOHOGW_SEATS__HOMES_ROOT": str(root / "homes"),
        "SOHOGW_SEATS__RUNTIME_ROOT": str(root / "run"),
        "SOHOGW_SEATS__CALL_STATE_ROOT": str(root / "calls"),
    }


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _end_wireguard_go(interface: str) -> None:
    """A killed gateway's wireguard-go runs on, reparented to init (the restart ends the first life's; nothing ends
    the second's): end whatever serves the interface's socket, and the scope table the run loaded."""
    pid = socket_server_pid(socket_path(interface))
    if pid is not None:
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while socket_server_pid(socket_path(interface)) == pid and time.monotonic() < deadline:
            time.sleep(0.05)
    socket_path(interface).unlink(missing_ok=True)
    subprocess.run(["nft", "delete", "table", "inet", "sohogw"], capture_output=True, check=False)


def _wait_serving(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"the gateway did not serve on {port}: {log.read_text()[-3000:]}")
        time.sleep(0.2)


def _first_run_secrets(data: Path) -> dict[str, str]:
    text = (data / "first-run.txt").read_text()
    found = {
        login: re.search(rf"^{login}\s+/\s+(\S+)", text, re.MULTILINE) for login in ("supervisor", "admin", "agent")
    }
    p12 = re.search(r"passphrase (\S+)\)", text)
    assert all(found.values()) and p12, text
    return {
        **{login: match.group(1) for login, match in found.items() if match},
        "p12": p12.group(1),
        "ca": (data / "ca-passphrase").read_text().strip(),
    }


def _agent_certificate(data: Path, passphrase: str, into: Path) -> tuple[str, str]:
    key, cert, _chain = pkcs12.load_key_and_certificates((data / "agent.p12").read_bytes(), passphrase.encode())
    assert key is not None and cert is not None
    key_file, cert_file = into / "agent.key", into / "agent.crt"
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(cert_file), str(key_file)


def _cookies(homes: Path) -> set[str]:
    """The X cookies in the seat users' Xauthority files (the last 16 bytes of each file's one entry)."""
    return {
        home.joinpath(".Xauthority").read_bytes()[-16:].hex()
        for home in homes.glob("*/")
        if (home / ".Xauthority").exists()
    }


def _instance_of(pid: int) -> str:
    for lock in OWNERS_DIR.glob("*.lock"):
        if lock.read_text().strip() == str(pid):
            return lock.stem
    raise AssertionError(f"process {pid} holds no seat instance")


def _seat_pids(instance: str) -> list[int]:
    root = hierarchies()[0].seats_root / instance
    return [int(pid) for procs in root.rglob("cgroup.procs") for pid in procs.read_text().split()]


def _running(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            continue
        if stat[stat.rindex(")") + 2] != "Z":
            alive.append(pid)
    return alive


FETCH = """
import ssl, sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], context=ssl._create_unverified_context(), timeout=5)
    print("answered")
except urllib.error.HTTPError as error:
    print(f"answered {error.code}")
except OSError as error:
    print(f"refused: {error}")
"""


def _fetch(url: str, user: pwd.struct_passwd | None = None) -> str:
    """What an HTTPS GET of `url` gets, as root or as a seat's Unix user."""
    options: dict[str, object] = {}
    if user is not None:
        options = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    result = subprocess.run(
        ["/usr/bin/python3", "-c", FETCH, url], capture_output=True, text=True, timeout=20, check=True, **options
    )  # type: ignore[call-overload]
    return str(result.stdout).strip()


def _a_seat_user_of(instance: str) -> pwd.struct_passwd:
    """A seat user of the instance whose allow-list is in place (its app may be starting)."""
    deadline = time.monotonic() + 20
    while True:
        rules = subprocess.run(["nft", "list", "table", *TABLE.split()], capture_output=True, text=True).stdout
        users = [
            entry
            for entry in pwd.getpwall()
            if entry.pw_name.startswith(f"sohoseat-{instance}-")
            and re.search(rf"jump {chain_name(entry.pw_uid)}\b", rules)
        ]
        if users:
            return users[0]
        assert time.monotonic() < deadline, "the restarted gateway started no seat"
        time.sleep(0.2)


class Storm:
    """The agent signs in once (with its certificate) and launches its seat again and again (each launch mints a
    token); the supervisor signs in again and again; someone keeps guessing the admin's password (refusals)."""

    def __init__(self, base_url: str, ca: str, agent_cert: tuple[str, str], secrets: dict[str, str]) -> None:
        self.launched = 0
        self.signed_in = 0
        self.refused = 0
        self.last_refusal = ""
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._agent, args=(base_url, ca, agent_cert, secrets["agent"]), daemon=True),
            threading.Thread(target=self._sign_ins, args=(base_url, ca, "supervisor", secrets["supervisor"])),
            threading.Thread(target=self._sign_ins, args=(base_url, ca, "admin", "a wrong guess")),
        ]
        for thread in self._threads:
            thread.daemon = True
            thread.start()

    def _agent(self, base_url: str, ca: str, cert: tuple[str, str], password: str) -> None:
        # httpx ignores `cert=` when `verify=` is a path: the client certificate goes in the SSL context.
        context = ssl.create_default_context(cafile=ca)
        context.load_cert_chain(*cert)
        with httpx.Client(base_url=base_url, verify=context, timeout=10) as client:
            while not self._stop.is_set():
                try:
                    if self.signed_in == 0 or self.last_refusal.startswith("launch 401"):
                        answer = sign_in(client, "agent", password)
                        if answer.status_code != 303:
                            self.last_refusal = f"sign-in {answer.status_code}: {page_error(answer)}"
                            continue
                        self.signed_in += 1
                    launch = launch_app(client)
                    if launch.status_code == 200:
                        self.launched += 1
                        self.last_refusal = ""
                    else:
                        self.last_refusal = f"launch {launch.status_code}: {page_error(launch)}"
                except httpx.HTTPError:
                    time.sleep(0.05)  # the gateway is gone or busy; keep storming

    def _sign_ins(self, base_url: str, ca: str, login: str, password: str) -> None:
        while not self._stop.is_set():
            try:
                with httpx.Client(base_url=base_url, verify=ca, timeout=10) as client:
                    if sign_in(client, login, password).status_code == 303:
                        self.signed_in += 1
                    else:
                        self.refused += 1
            except httpx.HTTPError:
                time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)


@pytest.fixture
def root() -> Iterator[Path]:
    made = Path(tempfile.mkdtemp(prefix="sohogw-embedded-", dir="/var/tmp"))  # seat users must enter it
    made.chmod(0o755)
    yield made
    subprocess.run(["rm", "-rf", str(made)], check=False)


def test_kill_9_during_a_login_storm_then_restart_leaves_only_the_new_pool_and_a_sound_record(root: Path) -> None:
    port = free_port()
    vpn_interface = f"sgwkill{os.urandom(3).hex()}"
    env = _environment(root, port, vpn_interface)
    data = root / "data"
    log = root / "embedded.log"
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with watching_command_lines() as watcher:
            with log.open("wb") as out:
                first = subprocess.Popen([str(REPO / "deploy/embedded.sh")], env=env, cwd=REPO, stdout=out, stderr=out)
            processes.append(first)
            _wait_serving(port, first, log, timeout=240)
            secrets = _first_run_secrets(data)
            ca = str(data / "ca/root-ca.cert.pem")
            storm = Storm(f"https://127.0.0.1:{port}", ca, _agent_certificate(data, secrets["p12"], root), secrets)
            started = time.monotonic()
            while storm.launched < 2 or storm.refused < 2 or time.monotonic() - started < STORM_SECONDS:
                assert time.monotonic() - started < 60, f"no seat launched: {storm.last_refusal}"
                time.sleep(0.1)
            instance = _instance_of(first.pid)
            old_pids = _seat_pids(instance)
            old_users = {entry.pw_name for entry in pwd.getpwall() if entry.pw_name.startswith(f"sohoseat-{instance}-")}
            cookies = _cookies(root / "homes")
            first.send_signal(signal.SIGKILL)  # mid-storm
            first.wait()
            storm.stop()
        lines = watcher.stop()
        assert any("sohogw serve" in line for line in lines) and any(line.startswith("x11vnc") for line in lines)
        assert not leaked(lines, set(secrets.values()) | cookies)

        assert len(old_pids) >= 4 and _running(old_pids) == old_pids, "the old life's seats run on after kill -9"
        engine = make_engine(f"sqlite:///{data / 'sohogw.db'}")
        with Session(engine) as db:
            left_live = [
                lease.id
                for lease in db.exec(select(SeatLease)).all()
                if lease.state not in (SeatLeaseState.ENDED,) and lease.backend == "x11"
            ]
        assert left_live, "the storm should have left seat leases live when the gateway died"

        with (root / "restart.log").open("wb") as out:
            second = subprocess.Popen(
                [str(REPO / ".venv/bin/sohogw"), "serve"], env=env, cwd=REPO, stdout=out, stderr=out
            )
        processes.append(second)
        _wait_serving(port, second, root / "restart.log", timeout=60)
        deadline = time.monotonic() + 20
        while _running(old_pids) or not (hierarchies()[0].seats_root / _instance_of(second.pid)).is_dir():
            assert time.monotonic() < deadline, f"old seat processes survive the restart: {_running(old_pids)}"
            time.sleep(0.2)
        assert not (hierarchies()[0].seats_root / instance).exists(), "the old life's cgroups are still there"
        seat_user = _a_seat_user_of(_instance_of(second.pid))
        for path in ("/metrics", "/internal/launch/alive", "/login"):
            url = f"https://127.0.0.1:{port}{path}"
            assert _fetch(url).startswith("answered"), f"the gateway does not answer {path} at all"
            assert _fetch(url, seat_user).startswith("refused"), f"a seat's user reaches the gateway's {path}"

        deadline = time.monotonic() + 30
        while True:
            with Session(engine) as db:
                leases = {lease.id: lease for lease in db.exec(select(SeatLease)).all()}
            if all(leases[lease_id].state == SeatLeaseState.ENDED for lease_id in left_live):
                break
            assert time.monotonic() < deadline, "the old life's seat leases are still live after the restart"
            time.sleep(0.5)
        assert all(leases[lease_id].end_reason is not None for lease_id in left_live)
        with Session(engine) as db:
            reaped = db.exec(select(AuditEvent).where(AuditEvent.action == "seat.earlier_life_ended")).all()
        assert reaped and old_users <= set(json.loads(reaped[-1].detail)["seat_users"]), "the restart left no trace"
        verified = subprocess.run(
            [str(REPO / ".venv/bin/sohogw"), "audit", "verify"], env=env, cwd=REPO, capture_output=True, text=True
        )
        assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait()
        end_earlier_lives()  # whatever the killed gateways left
        _end_wireguard_go(vpn_interface)
