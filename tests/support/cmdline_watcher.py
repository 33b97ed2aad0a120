"""Every command line that appears on this machine while a test runs, to prove no secret is in any argv.

Any local user can read `/proc/PID/cmdline` of every process. The watcher reads it twice over: at once
when the kernel reports an exec (the proc connector, netlink), which catches processes that live a
millisecond like `xauth`, and by sweeping all of `/proc` every few milliseconds. The proc connector only
answers in the initial network namespace, so under `ip netns exec` its socket is opened in the namespace of
the nearest ancestor process where it answers (setns on this thread only, and back).
"""

import contextlib
import ctypes
import ctypes.util
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

_NETLINK_CONNECTOR = 11
_CN_IDX_PROC = 1
_CN_VAL_PROC = 1
_PROC_CN_MCAST_LISTEN = 1
_PROC_EVENT_EXEC = 0x00000002
_NLMSG_DONE = 3
_CLONE_NEWNET = 0x40000000
# nlmsghdr (16) + cn_msg (20) + proc_event: what (4), cpu (4), timestamp (8), then exec's pid, tgid.
_EVENT_WHAT_OFFSET = 36
_EXEC_PID_OFFSET = 52
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def _setns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, _CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {path}")
    finally:
        os.close(fd)


def _subscribe() -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_CONNECTOR)
    try:
        sock.bind((0, _CN_IDX_PROC))
        payload = struct.pack("=I", _PROC_CN_MCAST_LISTEN)
        message = struct.pack("=IIIIHH", _CN_IDX_PROC, _CN_VAL_PROC, 0, 0, len(payload), 0) + payload
        sock.send(struct.pack("=IHHII", 16 + len(message), _NLMSG_DONE, 0, 0, 0) + message)
    except OSError:
        sock.close()
        raise
    return sock


def _ancestors() -> Iterator[int]:
    pid = os.getpid()
    while pid > 1:
        stat = Path(f"/proc/{pid}/stat").read_text()
        pid = int(stat[stat.rindex(")") + 2 :].split()[1])
        yield pid


def _proc_connector() -> socket.socket:
    """A netlink socket subscribed to exec events: in our own network namespace, else an ancestor's."""
    try:
        return _subscribe()
    except ConnectionRefusedError:
        pass  # not the initial network namespace
    back = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
    try:
        for pid in _ancestors():
            try:
                _setns(f"/proc/{pid}/ns/net")
            except OSError:
                continue
            try:
                return _subscribe()
            except ConnectionRefusedError:
                continue
            finally:
                if _libc.setns(back, _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns back to the test's network namespace")
    finally:
        os.close(back)
    raise RuntimeError("no ancestor process is in the initial network namespace: the proc connector is deaf here")


class CommandLineWatcher:
    """Collects every distinct command line seen; `seen` is read after `stop()`."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.exec_events = 0
        self._stop = threading.Event()
        self._socket = _proc_connector()
        self._socket.settimeout(0.05)
        self._threads = [
            threading.Thread(target=self._on_exec, daemon=True),
            threading.Thread(target=self._sweep, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _record(self, pid: str) -> None:
        with contextlib.suppress(OSError):
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
            if raw:
                self.seen.add(raw.replace(b"\0", b" ").decode(errors="replace").strip())

    def _on_exec(self) -> None:
        with self._socket as sock:
            while not self._stop.is_set():
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    continue
                if struct.unpack_from("=I", data, _EVENT_WHAT_OFFSET)[0] == _PROC_EVENT_EXEC:
                    self.exec_events += 1
                    self._record(str(struct.unpack_from("=I", data, _EXEC_PID_OFFSET)[0]))

    def _sweep(self) -> None:
        while not self._stop.is_set():
            for entry in os.listdir("/proc"):
                if entry.isdigit():
                    self._record(entry)
            time.sleep(0.002)

    def stop(self) -> set[str]:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        return self.seen


@contextlib.contextmanager
def watching_command_lines() -> Iterator[CommandLineWatcher]:
    watcher = CommandLineWatcher()
    try:
        yield watcher
    finally:
        watcher.stop()


def leaked(command_lines: set[str], secrets: set[str]) -> list[tuple[str, str]]:
    """(secret, command line) for every command line that carries a secret."""
    return [(secret, line) for line in command_lines for secret in secrets if secret and secret in line]
