"""Confined seats (issue 15), against the real kernel: cgroups, nftables, Unix users, Xvfb and x11vnc.

What an attacker inside a seat would try: read another seat's secrets from /proc, reach the node's own
services or another seat's x11vnc, fork the node to death, or outlive the broker that started it.
"""

import ipaddress
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from desktop_broker.x11 import SeatProcess, wait_for_first_frame
from desktop_broker.x11.cgroups import SeatCgroup
from desktop_broker.x11.egress import TABLE, allow_egress, chain_name, remove_egress, remove_stale_egress
from desktop_broker.x11.unix_accounts import SEAT_UIDS, accounts_locked
from desktop_broker.x11.users import reap_stale_seat_users
from policy.schema import SeatLimits
from policy.values import Destination
from tests.desktop_broker.x11_fixtures import running_seat
from tests.support.cmdline_watcher import leaked, watching_command_lines

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.geteuid() != 0, reason="confinement needs root (useradd, cgroups, nftables)"),
]
REPO = Path(__file__).resolve().parents[2]


def _uid_of(pid: int) -> int:
    return os.stat(f"/proc/{pid}").st_uid


def _running(pids: list[int]) -> list[int]:
    """The pids that still run something: zombies are dead (a container's PID 1 may be slow to reap them)."""
    alive = []
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            continue
        if stat[stat.rindex(")") + 2] != "Z":
            alive.append(pid)
    return alive


def _control(cgroup: SeatCgroup, *names: str) -> str:
    """The first of `names` the seat's cgroups have (cgroup v2 and v1 spell some limits differently)."""
    for name in names:
        try:
            return cgroup.read(name)
        except FileNotFoundError:
            continue
    raise AssertionError(f"none of {names} in {cgroup.directories}")


def test_every_process_of_a_seat_runs_as_its_user_inside_its_cgroup_with_the_policy_limits() -> None:
    limits = SeatLimits(pids=200, memory_mib=300, cpu_percent=50)
    with running_seat(limits=limits) as running:
        seat = running.seat
        assert seat.cgroup is not None
        members = set(seat.cgroup.pids())
        for name, process in seat.parts().items():
            assert _uid_of(process.pid) == seat.user.uid != 0, f"{name} does not run as the seat user"
            assert process.pid in members, f"{name} is not in the seat's cgroup"
        assert _control(seat.cgroup, "pids.max") == "200"
        assert _control(seat.cgroup, "memory.max", "memory.limit_in_bytes") == str(300 * 1024 * 1024)
        cpu = _control(seat.cgroup, "cpu.max", "cpu.cfs_quota_us")
        assert cpu in ("50000 100000", "50000")


def test_no_secret_of_a_seat_appears_in_any_command_line_while_seats_start_and_are_handed_out() -> None:
    with watching_command_lines() as watcher, running_seat() as first, running_seat() as second:
        for running in (first, second):
            wait_for_first_frame(running.seat.rfb_address, running.passwords.full_access)
            running.seat.show_watermark("agent-handed-out")  # what a hand-over does
        secrets = {
            secret
            for running in (first, second)
            for secret in (
                running.seat.display.cookie,
                running.passwords.full_access,
                running.passwords.view_only,
            )
        }
    lines = watcher.stop()
    assert watcher.exec_events > 0, "the watcher heard no exec at all: it would catch nothing"
    assert any(line.startswith("Xvfb") for line in lines) and any(line.startswith("x11vnc") for line in lines)
    assert not leaked(lines, secrets)


@dataclass(frozen=True, slots=True)
class Network:
    """A backend host in a namespace of its own behind a veth pair, and the node's side of the link."""

    backend_namespace: str
    node_address: str
    backend_address: str
    allowed_port: int
    other_port: int


LISTENER = """
import socket, sys, threading
def serve(port):
    server = socket.create_server((sys.argv[1], port))
    while True:
        connection, _ = server.accept()
        connection.sendall(b"hello from %d\\n" % port)
        connection.close()
for port in map(int, sys.argv[2:]):
    threading.Thread(target=serve, args=(port,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""


def _listen(address: str, *ports: int, netns: str | None = None, uid: int | None = None) -> subprocess.Popen[str]:
    """A listener answering "hello from <port>", in `netns` or as `uid` (Debian's python3: seat users cannot
    enter the venv's)."""
    prefix = ["ip", "netns", "exec", netns] if netns else []
    process = subprocess.Popen(
        [*prefix, "/usr/bin/python3", "-c", LISTENER, address, *map(str, ports)],
        stdout=subprocess.PIPE,
        text=True,
        user=uid,
        group=None if uid is None else pwd.getpwuid(uid).pw_gid,
        extra_groups=None if uid is None else [],
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    return process


@pytest.fixture(scope="module")
def network() -> Iterator[Network]:
    name = f"seatbackend-{uuid.uuid4().hex[:6]}"
    node_if, backend_if = f"vs{uuid.uuid4().hex[:6]}", "veth-backend"
    run = lambda *argv: subprocess.run(argv, check=True, capture_output=True)  # noqa: E731
    run("ip", "netns", "add", name)
    try:
        run("ip", "link", "add", node_if, "type", "veth", "peer", "name", backend_if, "netns", name)
        run("ip", "addr", "add", "10.231.7.1/24", "dev", node_if)
        run("ip", "link", "set", node_if, "up")
        run("ip", "netns", "exec", name, "ip", "addr", "add", "10.231.7.2/24", "dev", backend_if)
        run("ip", "netns", "exec", name, "ip", "link", "set", backend_if, "up")
        run("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
        backend = _listen("10.231.7.2", 7001, 7002, netns=name)
        try:
            yield Network(name, "10.231.7.1", "10.231.7.2", 7001, 7002)
        finally:
            backend.kill()
            backend.wait()
    finally:
        subprocess.run(["ip", "link", "del", node_if], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


PROBE = """
import socket, sys
try:
    connection = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
except OSError as error:
    print(f"refused: {error}")
else:
    print("reached: " + connection.recv(100).decode().strip())
"""


def _connect_as(seat: SeatProcess, host: str, port: int) -> str:
    """What the seat's own Unix user gets when it opens a TCP connection to host:port."""
    result = subprocess.run(
        ["/usr/bin/python3", "-c", PROBE, host, str(port)],
        user=seat.user.uid,
        group=seat.user.gid,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    return result.stdout.strip()


def test_a_seat_user_reaches_its_apps_backend_and_nothing_else(network: Network) -> None:
    backend = Destination(ipaddress.ip_network(f"{network.backend_address}/32"), "tcp", network.allowed_port)
    # The policy even names the node's own address: the node's services stay refused all the same.
    node_itself = Destination(ipaddress.ip_network(f"{network.node_address}/32"))
    gateway = _listen("0.0.0.0", 18443)  # noqa: S104 - every address, as a gateway listens; stands for the gateway's port (its /metrics and /internal/…)
    guacd = _listen("127.0.0.1", 14822)  # a guacd listener: no authentication, so never reachable from a seat
    try:
        with running_seat(egress=(backend, node_itself)) as mine, running_seat() as other:
            seat = mine.seat
            assert _connect_as(seat, network.backend_address, network.allowed_port) == "reached: hello from 7001"
            refused = {
                "backend host, port outside policy": (network.backend_address, network.other_port),
                "gateway port on loopback": ("127.0.0.1", 18443),
                "gateway port on the node's address": (network.node_address, 18443),
                "guacd": ("127.0.0.1", 14822),
                "another seat's x11vnc": ("127.0.0.1", other.seat.rfb_address.port),
                "its own x11vnc": ("127.0.0.1", seat.rfb_address.port),
            }
            for what, (host, port) in refused.items():
                assert _connect_as(seat, host, port).startswith("refused"), what
            # The other seat has no backend at all; root (the gateway's bridge) still reaches both seats.
            assert _connect_as(other.seat, network.backend_address, network.allowed_port).startswith("refused")
            wait_for_first_frame(seat.rfb_address, mine.passwords.full_access)
            wait_for_first_frame(other.seat.rfb_address, other.passwords.full_access)
        listing = subprocess.run(["nft", "list", "table", *TABLE.split()], capture_output=True, text=True).stdout
        assert f"chain {chain_name(seat.user.uid)} " not in listing, "the stopped seat's chain is still there"
    finally:
        for listener in (gateway, guacd):
            listener.kill()
            listener.wait()


FORK_BOMB = """
import os, time
while True:
    try:
        os.fork()
    except OSError:
        time.sleep(0.005)
"""


def test_a_fork_bomb_in_one_seat_stops_at_its_pids_limit_while_other_seats_keep_drawing() -> None:
    limits = SeatLimits(pids=64, memory_mib=256, cpu_percent=20)
    with running_seat() as first, running_seat() as second:
        with running_seat(argv=["/usr/bin/python3", "-c", FORK_BOMB], limits=limits) as bomb:
            cgroup = bomb.seat.cgroup
            assert cgroup is not None
            deadline = time.monotonic() + 20
            while _control(cgroup, "pids.current") != "64":
                assert time.monotonic() < deadline, f"the bomb never reached its limit: {cgroup.read('pids.current')}"
                time.sleep(0.05)
            # The count can reach the limit a moment before the first fork is refused there: wait for the refusal.
            while int(_control(cgroup, "pids.events").split()[-1]) == 0:
                assert time.monotonic() < deadline, "no fork was refused at the limit"
                time.sleep(0.05)
            for running in (first, second):
                started = time.monotonic()
                wait_for_first_frame(running.seat.rfb_address, running.passwords.full_access, timeout=5)
                assert time.monotonic() - started < 5
                assert running.seat.alive()
            assert _control(cgroup, "pids.current") == "64", "the bomb's seat went past its limit"
            bombers = cgroup.pids()
        assert not _running(bombers), "bomb processes outlived the seat"


def _connect_from(namespace: str, host: str, port: int) -> str:
    """What a host in another network namespace gets when it opens a TCP connection to host:port."""
    result = subprocess.run(
        ["ip", "netns", "exec", namespace, "/usr/bin/python3", "-c", PROBE, host, str(port)],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    return result.stdout.strip()


def test_a_seat_answers_only_connections_from_the_nodes_loopback(network: Network) -> None:
    # The policy allows the whole network the outside host is in: replies to it stay refused all the same.
    its_network = Destination(ipaddress.ip_network(f"{network.backend_address}/24", strict=False))
    with running_seat(egress=(its_network,)) as running:
        seat = running.seat
        as_seat = _listen("0.0.0.0", 18555, uid=seat.user.uid)  # noqa: S104 - every address: the attack
        as_root = _listen("0.0.0.0", 18556)  # noqa: S104 - control: the outside host does reach the node
        try:
            assert _connect_from(network.backend_namespace, network.node_address, 18556) == "reached: hello from 18556"
            assert _connect_from(network.backend_namespace, network.node_address, 18555).startswith("refused")
            wait_for_first_frame(seat.rfb_address, running.passwords.full_access)  # the gateway's bridge still works
            assert _connect_as(seat, network.backend_address, network.allowed_port) == "reached: hello from 7001"
        finally:
            for listener in (as_seat, as_root):
                listener.kill()
                listener.wait()


def test_a_seat_user_whose_allow_list_is_gone_reaches_nothing(network: Network) -> None:
    backend = Destination(ipaddress.ip_network(f"{network.backend_address}/32"), "tcp", network.allowed_port)
    with running_seat(egress=(backend,)) as running:
        seat = running.seat
        assert seat.user.uid in SEAT_UIDS
        assert _connect_as(seat, network.backend_address, network.allowed_port) == "reached: hello from 7001"
        # What another broker's stale sweep could do a moment after this seat's rules went in.
        subprocess.run(
            ["nft", "delete", "element", *TABLE.split(), "seat_egress", f"{{ {seat.user.uid} }}"], check=True
        )
        assert _connect_as(seat, network.backend_address, network.allowed_port).startswith("refused")
        nobody = subprocess.run(
            ["/usr/bin/python3", "-c", PROBE, network.backend_address, str(network.allowed_port)],
            user="nobody",
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        assert nobody.stdout.strip() == "reached: hello from 7001", "a user outside the seats' range is refused too"


BROKER = """
import json, sys, time
from pathlib import Path
from desktop_broker.x11 import SeatPasswords, SeatSpec, start_seat
from policy.rules import DisplayRules
root = Path(sys.argv[1])
# The app leaves a helper that escapes its session and process group, as a daemonising app would.
argv = ["/bin/sh", "-c", "setsid -f sleep 3001; exec sleep 3002"]
seats = [start_seat(SeatSpec(argv, DisplayRules(), "x", SeatPasswords.generate()), root / "homes", root / "run")
         for _ in range(2)]
time.sleep(0.5)
described = [
    {"user": s.user.name, "uid": s.user.uid, "pids": s.cgroup.pids(), "cgroups": [str(d) for d in s.cgroup.directories]}
    for s in seats
]
print(json.dumps(described), flush=True)
time.sleep(600)
"""


def test_seats_of_a_broker_killed_with_sigkill_are_ended_exactly_by_the_next_broker() -> None:
    root = Path(tempfile.mkdtemp(prefix="sohogw-x11-", dir="/var/tmp"))  # seat users must enter it
    root.chmod(0o755)
    broker = subprocess.Popen([sys.executable, "-c", BROKER, str(root)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert broker.stdout is not None
        seats = json.loads(broker.stdout.readline())
    finally:
        broker.send_signal(signal.SIGKILL)
        broker.wait()
    pids = [pid for seat in seats for pid in seat["pids"]]
    assert len(pids) >= 2 * 5, "each seat should hold Xvfb, watermark, x11vnc, the app and its escaped helper"
    assert _running(pids) == pids, "the seats should outlive a SIGKILLed broker"
    reaped = reap_stale_seat_users()  # what the next broker does when it claims its instance
    assert {seat["user"] for seat in seats} <= set(reaped)
    assert not _running(pids), "a process of the old life survived"
    assert not [d for seat in seats for d in seat["cgroups"] if Path(d).exists()]
    listing = subprocess.run(["nft", "list", "table", *TABLE.split()], capture_output=True, text=True).stdout
    assert not [seat for seat in seats if f"chain {chain_name(seat['uid'])} " in listing]
    shutil.rmtree(root, ignore_errors=True)


def test_rules_left_for_a_recycled_uid_are_replaced_and_stale_ones_swept() -> None:
    uid = 3_900_000 + os.getpid() % 1000  # no account has it: what a crashed seat leaves for a deleted user
    old = Destination(ipaddress.ip_network("192.0.2.7/32"), "tcp", 443)
    new = Destination(ipaddress.ip_network("198.51.100.9/32"), "tcp", 5432)
    try:
        allow_egress(uid, (old,))
        allow_egress(uid, (new,))  # a new seat user got the uid: its rules replace the old ones
        chain = subprocess.run(
            ["nft", "list", "chain", *TABLE.split(), chain_name(uid)], capture_output=True, text=True, check=True
        ).stdout
        assert "198.51.100.9" in chain and "192.0.2.7" not in chain
        assert remove_stale_egress(lambda candidate: candidate != uid) == [uid]
        listing = subprocess.run(["nft", "list", "table", *TABLE.split()], capture_output=True, text=True).stdout
        assert f"chain {chain_name(uid)} " not in listing and f"{uid} : jump" not in listing
    finally:
        remove_egress(uid)


def test_a_stale_sweep_never_deletes_rules_a_new_seat_user_of_the_same_uid_just_got() -> None:
    uid = 3_900_000 + os.getpid() % 1000 + 1  # no account has it
    old, new = (Destination(ipaddress.ip_network(a), "tcp", 443) for a in ("192.0.2.7/32", "198.51.100.9/32"))
    allow_egress(uid, (old,))  # left by a seat whose user is gone

    def another_broker_starts_a_seat() -> None:
        with accounts_locked():  # its useradd hands out the uid
            pass
        allow_egress(uid, (new,))

    other_broker = threading.Thread(target=another_broker_starts_a_seat)

    def judged_stale_while_another_broker_starts(candidate: int) -> bool:
        if candidate == uid:
            other_broker.start()
            other_broker.join(timeout=1)  # without the lock, its rules go in between check and delete
        return candidate != uid

    try:
        assert remove_stale_egress(judged_stale_while_another_broker_starts) == [uid]
        other_broker.join(timeout=10)
        listing = subprocess.run(["nft", "list", "table", *TABLE.split()], capture_output=True, text=True).stdout
        assert f"{uid} : jump {chain_name(uid)}" in listing, "the new seat user's element was deleted"
        assert "198.51.100.9" in listing and "192.0.2.7" not in listing
    finally:
        other_broker.join(timeout=10)
        remove_egress(uid)


ABSTRACT_PROBE = """
import socket, sys
for name in sys.argv[1:]:
    connection = socket.socket(socket.AF_UNIX)
    try:
        connection.connect(name.replace("@", "\\0", 1))
    except OSError as error:
        print(f"{name} refused: {error}", flush=True)
    else:
        print(f"{name} reached", flush=True)
"""


def test_a_seat_app_reaches_no_abstract_unix_socket_but_its_own_x_display() -> None:
    service = socket.socket(socket.AF_UNIX)  # stands for a daemon's abstract socket (a bus, a container runtime)
    name = f"@sohogw-test-{uuid.uuid4().hex[:8]}"
    service.bind(name.replace("@", "\0", 1))
    service.listen()
    try:
        with running_seat(argv=["/usr/bin/python3", "-c", ABSTRACT_PROBE, name]) as probe, running_seat() as other:
            assert probe.seat.app.wait(timeout=10) == 0
            said = (probe.seat.runtime_dir / "application.log").read_text()
            assert f"{name} refused" in said and "Operation not permitted" in said, said
            assert f"@/tmp/.X11-unix/X{other.seat.display.number}" not in Path("/proc/net/unix").read_text()
            wait_for_first_frame(other.seat.rfb_address, other.passwords.full_access)
            assert other.seat.alive(), "the console lost its X display"
            root = subprocess.run([sys.executable, "-c", ABSTRACT_PROBE, name], capture_output=True, text=True)
            assert root.stdout.strip() == f"{name} reached", "control: the socket takes connections from outside"
    finally:
        service.close()


MEMORY_HOG = "import time; hog = b'x' * (400 << 20); time.sleep(300)"


def test_an_app_past_its_memory_limit_is_killed_inside_its_seat_and_the_seat_reports_it() -> None:
    limits = SeatLimits(pids=64, memory_mib=128, cpu_percent=50)
    with running_seat() as neighbour, running_seat(argv=["/usr/bin/python3", "-c", MEMORY_HOG], limits=limits) as hog:
        assert hog.seat.app.wait(timeout=20) == -signal.SIGKILL, "the kernel did not kill the app at its limit"
        assert "application" in (hog.seat.failure() or "")
        cgroup = hog.seat.cgroup
        assert cgroup is not None
        if (Path(cgroup.directories[0]) / "memory.events").exists():
            assert "oom_kill 0" not in cgroup.read("memory.events")
        else:
            assert int(_control(cgroup, "memory.failcnt")) > 0
        assert hog.seat.display.process.poll() is None, "the seat's own Xvfb went with the app"
        assert neighbour.seat.alive()
        wait_for_first_frame(neighbour.seat.rfb_address, neighbour.passwords.full_access, timeout=5)


REPLACE_THE_SERVERS = """
import os, signal, socket
me = os.getuid()
for name in ("x11vnc", "Xvfb"):
    for pid in (int(entry) for entry in os.listdir("/proc") if entry.isdigit()):
        try:
            if os.stat(f"/proc/{pid}").st_uid != me or open(f"/proc/{pid}/comm").read().strip() != name:
                continue
            os.kill(pid, signal.SIGKILL)
        except FileNotFoundError:
            continue
        except OSError as error:
            print(f"{name} {pid} refused: {error}", flush=True)
        else:
            print(f"{name} {pid} killed", flush=True)
        if name == "x11vnc":
            try:
                open(f"/proc/{pid}/mem", "rb").close()
            except OSError as error:
                print(f"x11vnc memory refused: {error}", flush=True)
listener = socket.socket()
try:
    listener.bind(("127.0.0.1", 0))
    listener.listen()
except OSError as error:
    print(f"listening refused: {error}", flush=True)
else:
    print(f"listening on {listener.getsockname()[1]}", flush=True)
"""


def test_a_seat_app_can_neither_kill_its_x11vnc_or_xvfb_nor_listen_in_their_place() -> None:
    """The app runs as the same Unix user as x11vnc and Xvfb. Had it killed x11vnc and listened on a loopback port,
    the agent's reconnect, supervisors and the recorder would have talked to its fake server (review finding F5)."""
    with running_seat(argv=["/usr/bin/python3", "-c", REPLACE_THE_SERVERS]) as attacker:
        seat = attacker.seat
        assert seat.app.wait(timeout=10) == 0
        said = (seat.runtime_dir / "application.log").read_text()
        assert f"x11vnc {seat.x11vnc.pid} refused: [Errno 1] Operation not permitted" in said, said
        assert f"Xvfb {seat.display.process.pid} refused: [Errno 1] Operation not permitted" in said, said
        assert "listening refused: [Errno 13] Permission denied" in said, said
        assert "x11vnc memory refused: [Errno 13] Permission denied" in said, said  # Landlock's ptrace rule
        assert seat.x11vnc.poll() is None and seat.display.process.poll() is None
        wait_for_first_frame(seat.rfb_address, attacker.passwords.full_access)


STAND_IN_X_SERVER = """
import os, socket, struct, sys
path = sys.argv[1]
os.unlink(path)  # the seat user owns its display's socket: it may replace it
server = socket.socket(socket.AF_UNIX)
server.bind(path)
server.listen()
print("ready", flush=True)
client, _ = server.accept()
pid, uid, gid = struct.unpack("3i", client.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
print(uid, flush=True)
"""


def test_the_idle_probe_speaks_x11_to_a_seat_display_as_the_seat_user_never_as_root() -> None:
    """The seat user owns `/tmp/.X11-unix/X<n>`: once its X server is gone, whatever the seat runs may answer there,
    and a root X client would parse that program's replies (review finding F5)."""
    with running_seat() as running:
        seat = running.seat
        display_socket = Path(f"/tmp/.X11-unix/X{seat.display.number}")
        seat.display.process.kill()  # as the app could make it die (see landlock_domain: prlimit)
        seat.display.process.wait()
        stand_in = subprocess.Popen(
            ["/usr/bin/python3", "-c", STAND_IN_X_SERVER, str(display_socket)],
            user=seat.user.uid,
            group=seat.user.gid,
            extra_groups=[],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert stand_in.stdout is not None
            assert stand_in.stdout.readline().strip() == "ready"
            with pytest.raises(subprocess.CalledProcessError):
                seat.idle_seconds()  # the stand-in hangs up without a word
            assert int(stand_in.stdout.readline()) == seat.user.uid != 0
        finally:
            stand_in.kill()
            stand_in.wait()


def test_a_seats_logs_are_root_s_alone_and_no_other_seat_user_reads_them() -> None:
    """The runtime folder's name is public (x11vnc's argv names the passwords file in it), and an app's log may hold
    whatever the app prints (review finding F6)."""
    with running_seat() as mine, running_seat() as other:
        logs = [*sorted(mine.seat.runtime_dir.glob("*.log")), mine.seat.runtime_dir / "x11vnc.stdout"]
        assert {path.name for path in logs} >= {"application.log", "watermark.log", "x11vnc.log", "xvfb.log"}
        for path in logs:
            status = path.lstat()
            assert (status.st_uid, stat.S_IMODE(status.st_mode)) == (0, 0o600), path.name
            reader = subprocess.run(
                ["cat", str(path)],
                user=other.seat.user.uid,
                group=other.seat.user.gid,
                extra_groups=[],
                capture_output=True,
                check=False,
            )
            assert reader.returncode != 0 and b"Permission denied" in reader.stderr, path.name
        assert mine.seat.alive() and other.seat.alive()
