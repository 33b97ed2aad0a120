"""The real guacd 1.6.0 for the Guacamole tests, and a passive wire tap in front of it.

guacd runs in the foreground with its debug log in a file: what it says (a client created, a parameter it had to
default, a certificate it refused, a file transfer it turned down) is what the tests read. The tap relays bytes
between guacamole-lite and guacd unchanged and decodes them on the way, so a test can state exactly which `select`
and `connect` values and which input instructions reached the real guacd; it answers nothing itself.

guacd is found through SOHOGW_GUACD (tests/guacd.sh exports it), else /opt/guacd/sbin/guacd. Without it the
Guacamole tests cannot run: a failure in CI, a skip with the reason elsewhere.
"""

import contextlib
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from desktop_broker.recording.wire import InstructionReader, WireError

DEFAULT_GUACD = "/opt/guacd/sbin/guacd"
HANDSHAKE = ("size", "audio", "video", "image", "timezone", "name")
"""What a client sends between `select` and `connect` (the two pump threads may see `ready` first)."""
NEW_CONNECTION = re.compile(r'Creating new client for protocol "|Joining existing connection "')


def guacd_binary() -> str:
    """The guacd the tests run; fails (CI) or skips loudly when there is none."""
    path = os.environ.get("SOHOGW_GUACD", DEFAULT_GUACD)
    if os.access(path, os.X_OK):
        return path
    message = f"guacd is not installed at {path}: run tests/run.sh (it builds guacd from ../shared/guacd)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RealGuacd:
    """`guacd -f -L debug` on a free loopback port; its log is a file the test reads."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.log_path = log_dir / f"guacd-{self.port}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [guacd_binary(), "-f", "-b", "127.0.0.1", "-l", str(self.port), "-L", "debug"],
                stdout=log,
                stderr=log,
                cwd=log_dir,
            )
        deadline = time.monotonic() + 10
        while "Listening on host" not in self.log():
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"guacd did not start: {self.log()}")
            time.sleep(0.05)

    def log(self, since: int = 0) -> str:
        """guacd's log from byte offset `since` (see `mark`)."""
        with self.log_path.open("rb") as log:
            log.seek(since)
            return log.read().decode(errors="replace")

    def mark(self) -> int:
        """The log's length now: pass it to `log` or `new_connections` to read only what follows."""
        return self.log_path.stat().st_size

    def new_connections(self, since: int) -> int:
        """How many connections guacd began (new or joined) after `since`, by its own log."""
        return len(NEW_CONNECTION.findall(self.log(since)))

    def wait_for_log(self, pattern: str, since: int = 0, timeout: float = 10.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while (found := re.search(pattern, self.log(since))) is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"guacd never logged {pattern!r}; its log:\n{self.log(since)[-3000:]}")
            time.sleep(0.05)
        return found

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class TappedConnection:
    """What one guacamole-lite connection sent the real guacd, decoded from the bytes it relayed."""

    selector: str = ""
    arg_names: tuple[str, ...] = ()
    parameters: dict[str, str] = field(default_factory=dict)
    handshake: dict[str, tuple[str, ...]] = field(default_factory=dict)
    connection_id: str | None = None
    after_ready: list[tuple[str, ...]] = field(default_factory=list)
    from_guacd: list[tuple[str, ...]] = field(default_factory=list)
    open: bool = True

    def opcodes_after_ready(self) -> list[str]:
        return [instruction[0] for instruction in self.after_ready]


class GuacdTap:
    """A loopback TCP relay in front of the real guacd that decodes, never alters, what passes."""

    def __init__(self, guacd: RealGuacd) -> None:
        self.guacd = guacd
        self.connections: list[TappedConnection] = []
        self._changed = threading.Condition()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._sockets: set[socket.socket] = set()
        threading.Thread(target=self._accept, name="guacd-tap", daemon=True).start()

    def wait_for(self, condition: Callable[[], bool], timeout: float = 5.0) -> bool:
        with self._changed:
            return self._changed.wait_for(condition, timeout=timeout)

    def since(self, before: int) -> list[TappedConnection]:
        with self._changed:
            return self.connections[before:]

    def stop(self) -> None:
        self._listener.close()
        for sock in list(self._sockets):
            sock.close()

    def _record(self, change: Callable[[], None]) -> None:
        with self._changed:
            change()
            self._changed.notify_all()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.guacd.port))
            record = TappedConnection()
            self._record(lambda r=record: self.connections.append(r))
            self._sockets |= {client, upstream}
            threading.Thread(target=self._pump, args=(client, upstream, record, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, record, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, record: TappedConnection, to_guacd: bool) -> None:
        parser = InstructionReader()
        try:
            while data := source.recv(65536):
                # Decoded before it is relayed, so that the answer it draws always finds it recorded: guacamole-lite
                # answers guacd's `args` with `connect` within microseconds, and the `connect` (read by the other
                # pump thread) must find the argument names that `args` gave.
                for instruction in parser.feed(data):
                    self._record(lambda i=instruction: self._note(record, i, to_guacd))
                sink.sendall(data)
        except (OSError, WireError):
            pass
        finally:
            # shutdown, not only close: the other pump thread is blocked in recv on one of these sockets, and a
            # close() alone would neither wake it nor send the FIN, so guacd would not see the client leave.
            for sock in (source, sink):
                self._sockets.discard(sock)
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._record(lambda: setattr(record, "open", False))

    @staticmethod
    def _note(record: TappedConnection, instruction: tuple[str, ...], to_guacd: bool) -> None:
        opcode, values = instruction[0], instruction[1:]
        if not to_guacd:
            if opcode == "args":
                record.arg_names = values
            elif opcode == "ready":
                record.connection_id = values[0]
            elif opcode in ("clipboard", "ack", "error", "msg"):
                record.from_guacd.append(instruction)
        elif opcode == "select":
            record.selector = values[0]
        elif opcode == "connect":
            # The first arg is guacd's protocol version; the client answers it with its own.
            record.parameters = dict(zip(record.arg_names[1:], values[1:], strict=False))
        elif opcode in HANDSHAKE:
            record.handshake[opcode] = values
        elif record.connection_id is not None:
            record.after_ready.append(instruction)
