"""Record an X11 seat through guacd: a read-only VNC connection to the seat's x11vnc that nobody watches.

The gateway speaks the Guacamole protocol to guacd as a client would (``select vnc``, the handshake, ``connect``
with guacd's ``recording-*`` parameters) and then only keeps the connection alive: it answers every ``sync``
(guacd slows its frames down for a client that lags behind) and sends ``nop`` every few seconds (guacd drops a
client silent for 15 s). guacd writes the recording exactly as it does for a Guacamole seat, so both backends
give one format, played by guacamole-common-js's ``Guacamole.SessionRecording``.

The connection authenticates with the seat's view-only password, and asks guacd for ``read-only=true``: neither
x11vnc nor guacd would take input from it, and it sends none. It is a second VNC client of x11vnc, beside the
agent's; x11vnc serves both from its one loop (no ``-threads``), and bench/bench_recording.py finds no delay for the
agent's frames. guacd writes a change into the recording within ~0.1 s of x11vnc sending it (docs/recordings.md).
"""

import contextlib
import logging
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from desktop_broker.recording.wire import (
    ClientHandshake,
    HandshakeRefused,
    InstructionReader,
    WireError,
    encode,
    handshake,
)

log = logging.getLogger(__name__)
HANDSHAKE_TIMEOUT = 10.0
KEEPALIVE_SECONDS = 5.0
CLOSE_TIMEOUT = 5.0


class RecorderFailed(Exception):
    """guacd refused or did not complete the recording connection; the message says what it answered."""


@dataclass(frozen=True, slots=True)
class RecordingTarget:
    """What to record and where guacd writes it (``directory`` as guacd sees it, made 0700 by guacd)."""

    rfb_host: str
    rfb_port: int
    view_only_password: str
    directory: Path
    name: str
    width: int = 1280
    height: int = 800

    def parameters(self) -> dict[str, str]:
        """guacd's VNC parameters: read-only, no clipboard either way, the recording without keys or mouse."""
        return {
            "hostname": self.rfb_host,
            "port": str(self.rfb_port),
            "password": self.view_only_password,
            "read-only": "true",
            "disable-copy": "true",
            "disable-paste": "true",
            "recording-path": str(self.directory),
            "recording-name": self.name,
            "create-recording-path": "true",
            "recording-include-keys": "false",
        }


class GuacdRecorder:
    """One recording connection to guacd; `start` returns once guacd answered ``ready``, `stop` ends it."""

    def __init__(self, guacd_host: str, guacd_port: int, target: RecordingTarget) -> None:
        self.target = target
        self._address = (guacd_host, guacd_port)
        self._socket: socket.socket | None = None
        self._send_lock = threading.Lock()
        self._reader = InstructionReader()
        self._pending: list[tuple[str, ...]] = []
        self._thread: threading.Thread | None = None
        self.closed = threading.Event()
        """Set when guacd closed the connection (the seat went away, or after `stop`)."""
        self.connection_id = ""

    def start(self) -> str:
        """Connect, hand guacd the parameters, wait for ``ready``; `RecorderFailed` with guacd's answer otherwise."""
        try:
            sock = socket.create_connection(self._address, timeout=HANDSHAKE_TIMEOUT)
        except OSError as error:
            raise RecorderFailed(f"guacd at {self._address[0]}:{self._address[1]} did not answer: {error}") from None
        self._socket = sock
        target = self.target
        client = ClientHandshake(size=(target.width, target.height, 96), image_types=("image/png",))
        try:
            self.connection_id, self._reader, self._pending = handshake(
                sock, "vnc", target.parameters(), client, HANDSHAKE_TIMEOUT
            )
        except (OSError, WireError, HandshakeRefused) as error:
            sock.close()
            self.closed.set()
            raise RecorderFailed(f"guacd refused the recording connection: {error}") from None
        sock.settimeout(KEEPALIVE_SECONDS)
        self._thread = threading.Thread(target=self._pump, name=f"recorder-{self.target.name}", daemon=True)
        self._thread.start()
        return self.connection_id

    def stop(self) -> None:
        """Say ``disconnect`` and wait (briefly) for guacd to close; guacd then finishes the recording file."""
        sock = self._socket
        if sock is None or self.closed.is_set():
            return
        with contextlib.suppress(OSError):  # guacd already gone: nothing to tell it
            self._send("disconnect")
        if not self.closed.wait(CLOSE_TIMEOUT):
            log.warning("guacd kept recording connection %s open after disconnect; closing it", self.connection_id)
        sock.close()
        if self._thread is not None:
            self._thread.join(timeout=CLOSE_TIMEOUT)

    def _send(self, *elements: str) -> None:
        assert self._socket is not None
        with self._send_lock:
            self._socket.sendall(encode(*elements))

    def _pump(self) -> None:
        """Answer syncs, send keep-alives, until guacd closes the connection."""
        assert self._socket is not None
        last_sent = time.monotonic()
        try:
            while True:
                try:
                    data: bytes | None = self._socket.recv(262144)
                except TimeoutError:
                    data = None  # quiet display: only the keep-alive below is due
                if data == b"":
                    return
                if data:
                    self._pending += self._reader.feed(data)
                for instruction in self._pending:
                    if instruction[0] == "sync":
                        self._send("sync", instruction[1])
                        last_sent = time.monotonic()
                    elif instruction[0] in ("error", "disconnect"):
                        log.info("guacd ended recording %s: %s", self.target.name, " ".join(instruction))
                        return
                self._pending = []
                if time.monotonic() - last_sent >= KEEPALIVE_SECONDS:
                    self._send("nop")
                    last_sent = time.monotonic()
        except (OSError, WireError) as error:
            log.info("recording connection %s lost: %s", self.target.name, error)
        finally:
            self.closed.set()
