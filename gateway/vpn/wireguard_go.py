"""wireguard-go as a supervised child process: started in the foreground, watched, restarted if it dies.

wireguard-go daemonises by default, which would leave nobody to notice it dying; `-f` keeps it our child.
Its UAPI socket lives in /var/run/wireguard, a directory every network namespace shares, so interface
names must be unique across namespaces. When the process dies its TUN device vanishes with all peers and
addresses: after a restart `on_restart` runs so the owner can put the interface back as it should be.
"""

import logging
import os
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
