"""Network namespaces for tests: unique names, veth links, processes inside, and a teardown that always runs.

Importable from any test folder (`from tests.vpn.netns import NetnsLab`). Every name carries a random
suffix, so parallel runs and leftovers of a crashed run never collide; `close()` kills every process started
here and every process still inside our namespaces, then deletes the namespaces.
"""

import contextlib
import ctypes
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from types import TracebackType

CLONE_NEWNET = 0x40000000
ECHO_SERVER = (
    "import socket, sys, threading\n"
    "server = socket.create_server((sys.argv[1], int(sys.argv[2])))\n"
    "def echo(peer):\n"
    "    for data in iter(lambda: peer.recv(64), b''):\n"
    "        peer.sendall(data)\n"
    "while True:\n"
    "    threading.Thread(target=echo, args=(server.accept()[0],), daemon=True).start()\n"
)
"""A TCP echo server for ``NetnsLab.spawn`` (``python -c ECHO_SERVER ADDRESS PORT``): what a home's held connection
talks to, so a test can ask whether that connection still carries."""
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


@contextlib.contextmanager
def inside(ns: str) -> Iterator[None]:
    """This thread in namespace ``ns`` for the block: the sockets it opens there stay there afterwards.

    setns(2) moves only the calling thread (a thread started inside inherits it), so a test can serve an app in one
    namespace from a background thread and act as a browser in another from its own thread, in one process.
    """
    with open("/proc/thread-self/ns/net") as here, open(f"/run/netns/{ns}") as there:
        _setns(there.fileno())
        try:
            yield
        finally:
            _setns(here.fileno())


class NetnsLab:
    """The namespaces, links and processes of one test."""

    def __init__(self, prefix: str = "sgw-") -> None:
        """``prefix`` starts every namespace's name (a run's own, so its leftovers are told apart)."""
        self.prefix = prefix
        self.suffix = secrets.token_hex(3)
        self.namespaces: list[str] = []
        self.processes: list[subprocess.Popen[bytes]] = []
        self._links = 0

    def __enter__(self) -> "NetnsLab":
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.close()

    def name(self, role: str) -> str:
        """A name unique to this lab, short enough for an interface (15 characters at most)."""
        return f"{role[:8]}{self.suffix}"

    def add(self, role: str) -> str:
        """Create a namespace with loopback up and forwarding on; returns its unique name."""
        name = f"{self.prefix}{role}-{self.suffix}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        self.namespaces.append(name)
        self.run(name, "ip", "link", "set", "lo", "up")
        self.run(name, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
        return name

    def link(self, ns_a: str, address_a: str, ns_b: str, address_b: str) -> tuple[str, str]:
        """A veth pair between two namespaces with these CIDR addresses, both ends up."""
        self._links += 1
        end_a, end_b = self.name(f"va{self._links}"), self.name(f"vb{self._links}")
        subprocess.run(
            ["ip", "link", "add", end_a, "netns", ns_a, "type", "veth", "peer", "name", end_b, "netns", ns_b],
            check=True,
        )
        for ns, end, address in ((ns_a, end_a, address_a), (ns_b, end_b, address_b)):
            self.run(ns, "ip", "addr", "add", address, "dev", end)
            self.run(ns, "ip", "link", "set", end, "up")
        return end_a, end_b

    def run(
        self, ns: str, *command: str, check: bool = True, timeout: float = 15, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside a namespace and wait for it."""
        return subprocess.run(
            ["ip", "netns", "exec", ns, *command],
            check=check,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=stdin,
        )

    def spawn(self, ns: str, *command: str) -> subprocess.Popen[bytes]:
        """Start a long-running command inside a namespace, in its own process group; killed by close()."""
        process = subprocess.Popen(
            ["ip", "netns", "exec", ns, *command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def close(self) -> None:
        """Kill what we started and anything left inside our namespaces, then delete the namespaces."""
        for process in self.processes:
            _kill_group(process)
        for ns in self.namespaces:
            found = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, check=False)
            for pid in found.stdout.split():
                _kill_pid(int(pid))
        for ns in self.namespaces:
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)
        self.namespaces.clear()
        self.processes.clear()


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    process.wait(5)
    if process.stdout:
        process.stdout.close()


def _kill_pid(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.01)


def _alive(pid: int) -> bool:
    """Running, not merely a zombie waiting for a parent (maybe this very process) to reap it."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False
