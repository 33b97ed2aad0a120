"""wireguard-go as a supervised child process: started in the foreground, watched, restarted if it dies.

wireguard-go daemonises by default, which would leave nobody to notice it dying; `-f` keeps it our child.
Its UAPI socket lives in /var/run/wireguard, a directory every network namespace shares, so interface
names must be unique across namespaces. When the process dies its TUN device vanishes with all peers and
addresses: after a restart `on_restart` runs so the owner can put the interface back as it should be.

A gateway killed with `kill -9` leaves its wireguard-go running (reparented to init), still holding the
interface and the UAPI socket. The next start asks the socket who serves it (SO_PEERCRED gives the exact
process, no guessing by name) and ends that process when it is an orphan of an earlier life: reparented to
init and in the gateway's own cgroup (so a wireguard-go that systemd runs as a unit of its own is not ours).
Anything else serving the socket is refused with its pid.
"""

import contextlib
import logging
import os
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from gateway.vpn.backend import WireGuardError
from gateway.vpn.interface import netns_prefix
from gateway.vpn.uapi_wire import SOCKET_DIR, answers, socket_path

log = logging.getLogger(__name__)


class WireGuardGo:
    """One wireguard-go process for one interface, kept alive until `stop()`."""

    def __init__(
        self,
        name: str,
        netns: str | None = None,
        socket_dir: Path = SOCKET_DIR,
        on_restart: Callable[[], None] | None = None,
        ready_timeout_s: float = 5.0,
    ) -> None:
        self.name = name
        self.netns = netns
        self.socket = socket_path(name, socket_dir)
        self.on_restart = on_restart
        self.ready_timeout_s = ready_timeout_s
        self.restarts = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> None:
        """Start the daemon, wait until its socket answers, and begin watching it."""
        self._stopping.clear()
        self._spawn()
        self._watcher = threading.Thread(target=self._watch, name=f"wireguard-go {self.name}", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        """Stop watching and end the process (SIGTERM, then SIGKILL after 3 s); the interface goes with it."""
        self._stopping.set()
        process = self._process
        if process and process.poll() is None:
            process.terminate()
            try:
                process.wait(3)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._watcher and self._watcher is not threading.current_thread():
            self._watcher.join(5)

    def _spawn(self) -> None:
        if self.socket.exists() and answers(self.socket):
            self._end_earlier_life()
        if self.socket.exists() and not answers(self.socket):
            self.socket.unlink()  # left by a killed daemon
        command = [*netns_prefix(self.netns), "wireguard-go", "-f", self.name]
        env = {**os.environ, "WG_PROCESS_FOREGROUND": "1"}
        # stderr goes to a file, not a pipe: nobody reads it while all is well, and a full pipe would block.
        with tempfile.TemporaryFile() as stderr:
            self._process = subprocess.Popen(
                command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr
            )
            deadline = time.monotonic() + self.ready_timeout_s
            while not answers(self.socket):
                if self._process.poll() is not None:
                    stderr.seek(0)
                    error = stderr.read().decode(errors="replace").strip()[-500:]
                    raise WireGuardError(f"wireguard-go for {self.name} exited at start: {error}")
                if time.monotonic() > deadline:
                    self._process.kill()
                    raise WireGuardError(f"wireguard-go for {self.name} did not open {self.socket} in time")
                time.sleep(0.01)

    def _end_earlier_life(self) -> None:
        """End the orphaned wireguard-go that still serves our socket (SIGTERM, SIGKILL after 3 s)."""
        pid = socket_server_pid(self.socket)
        if pid is None:
            return
        parent = _parent_of(pid)
        if parent is None:
            return
        if parent != 1 or _cgroup_of(pid) != _cgroup_of(os.getpid()):
            raise WireGuardError(
                f"{self.socket} is served by process {pid} (parent {parent}), not by an earlier life of this "
                f"gateway: stop it, or give this gateway another interface name than {self.name}"
            )
        log.warning("ending wireguard-go %s (pid %d) left by an earlier life of the gateway", self.name, pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 3
        while _parent_of(pid) is not None:
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)

    def _watch(self) -> None:
        while not self._stopping.is_set():
            process = self._process
            if process is None:
                return
            code = process.wait()
            if self._stopping.is_set():
                return
            log.warning("wireguard-go for %s exited with %s; restarting", self.name, code)
            try:
                self._spawn()
            except WireGuardError:
                log.exception("restarting wireguard-go for %s failed; retrying in 1 s", self.name)
                self._stopping.wait(1)
                continue
            self.restarts += 1
            self._run_restart_hook()

    def _run_restart_hook(self) -> None:
        if self.on_restart is None:
            return
        try:
            self.on_restart()
        except Exception:  # a failing hook must not end the supervision; the reconcile loop retries
            log.exception("setting up wireguard-go for %s again after its restart failed", self.name)


def socket_server_pid(path: Path) -> int | None:
    """The pid of the process listening on a Unix socket (SO_PEERCRED), or None if nothing answers."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return None
        credentials = probe.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, _uid, _gid = struct.unpack("3i", credentials)
    return int(pid)


def _cgroup_of(pid: int) -> str:
    """The process's cgroup v2 path ("0::/…" line of /proc/PID/cgroup)."""
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    return next((line for line in lines if line.startswith("0::")), "")


def _parent_of(pid: int) -> int | None:
    """The parent of a live process; None once it is gone (or only a zombie is left of it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] == "Z" else int(fields[1])
