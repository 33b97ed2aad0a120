"""A guacd PROTOCOL STAND-IN, kept only for unit tests of malformed protocol input
(test_guacamole_standin.py): every other Guacamole test runs the real guacd 1.6.0 (tests/support/guacd.py).

It is not guacd: it runs no RDP or VNC client and draws one trivial frame. What it does faithfully
is the wire protocol guacamole-lite talks to guacd — `select` → `args` (with a protocol version) →
`size`/`audio`/`video`/`image`/`timezone` → `connect` → `ready` — per the Guacamole protocol
reference, and it records every instruction and parameter it receives.
"""

import socket
import socketserver
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.support.guacamole_protocol import InstructionParser, ProtocolError, encode

ARGS = {
    "rdp": (
        "hostname", "port", "username", "password", "domain", "remote-app", "remote-app-dir",
        "remote-app-args", "disable-copy", "disable-paste", "enable-drive", "drive-path",
        "disable-download", "disable-upload", "enable-printing", "recording-path", "recording-name",
        "create-recording-path", "read-only",
    ),
    "vnc": ("hostname", "port", "password", "disable-copy", "disable-paste", "read-only",
            "recording-path", "recording-name", "create-recording-path"),
}  # fmt: skip
"""A subset of guacd 1.5's argument names per protocol, in the order guacd would ask for them."""

PROTOCOL_VERSION = "VERSION_1_5_0"
HANDSHAKE_OPCODES = ("size", "audio", "video", "image", "timezone", "name")


@dataclass
class StandInConnection:
    """Everything one client connection sent the stand-in, in order."""

    selector: str = ""
    handshake: dict[str, tuple[str, ...]] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)
    connection_id: str | None = None
    joined: str | None = None
    after_ready: list[tuple[str, ...]] = field(default_factory=list)
    refused: str | None = None

    def opcodes_after_ready(self) -> list[str]:
        return [instruction[0] for instruction in self.after_ready]


class GuacdStandIn:
    """TCP server on 127.0.0.1 that answers like guacd and records what it is sent."""

    def __init__(self, frame_size: tuple[int, int] = (640, 480)) -> None:
        self.frame_size = frame_size
        self.connections: list[StandInConnection] = []
        self._changed = threading.Condition()
        self._server = _Server(("127.0.0.1", 0), _Session)
        self._server.standin = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="guacd-standin", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> "GuacdStandIn":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        for sock in list(self._server.live_sockets):
            sock.close()
        self._thread.join(timeout=5)

    def wait_for(self, condition: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Block until `condition()` holds (re-checked on every recorded instruction) or time runs out."""
        with self._changed:
            return self._changed.wait_for(condition, timeout=timeout)

    def live_protocol(self, connection_id: str) -> str | None:
        with self._changed:
            for connection in self.connections:
                if connection.connection_id == connection_id and connection.joined is None:
                    return connection.selector
        return None

    def record(self, change: Callable[[], None]) -> None:
        with self._changed:
            change()
            self._changed.notify_all()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    standin: GuacdStandIn

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.live_sockets: set[socket.socket] = set()


class _Session(socketserver.BaseRequestHandler):
    """One guacd-side conversation: handshake, `ready`, one frame, then record and keep alive."""

    server: _Server

    def handle(self) -> None:
        standin = self.server.standin
        self.server.live_sockets.add(self.request)
        self.request.settimeout(1.0)
        self.parser = InstructionParser()
        self.pending: list[tuple[str, ...]] = []
        record = StandInConnection()
        standin.record(lambda: standin.connections.append(record))
        try:
            self._converse(standin, record)
        except (OSError, ProtocolError) as error:
            reason = f"connection lost: {error}"
            standin.record(lambda: setattr(record, "refused", record.refused or reason))
        finally:
            self.server.live_sockets.discard(self.request)

    def _converse(self, standin: GuacdStandIn, record: StandInConnection) -> None:
        select = self._expect_next(standin)
        if select is None or select[0] != "select" or len(select) != 2:
            self._refuse(standin, record, f"expected select, got {select!r}")
            return
        selector = select[1]
        protocol = standin.live_protocol(selector) if selector.startswith("$") else selector
        if protocol not in ARGS:
            self._refuse(standin, record, f"no such protocol or connection: {selector!r}")
            return
        standin.record(lambda: setattr(record, "selector", selector))
        arg_names = (PROTOCOL_VERSION, *ARGS[protocol])
        self._send(encode("args", *arg_names))
        while (instruction := self._expect_next(standin)) is not None and instruction[0] != "connect":
            if instruction[0] not in HANDSHAKE_OPCODES:
                self._refuse(standin, record, f"unexpected {instruction[0]!r} during handshake")
                return
            standin.record(lambda i=instruction: record.handshake.__setitem__(i[0], i[1:]))
        if instruction is None or len(instruction) - 1 != len(arg_names):
            self._refuse(standin, record, f"connect does not answer the {len(arg_names)} args: {instruction!r}")
            return
        values = dict(zip(arg_names[1:], instruction[2:], strict=True))
        connection_id = selector if selector.startswith("$") else f"${uuid.uuid4()}"

        def connected() -> None:
            record.parameters = values
            record.connection_id = connection_id
            record.joined = selector if selector.startswith("$") else None

        standin.record(connected)
        self._send(encode("ready", connection_id) + self._frame(standin.frame_size))
        while (instruction := self._expect_next(standin, keep_alive=True)) is not None:
            standin.record(lambda i=instruction: record.after_ready.append(i))
            if instruction[0] == "disconnect":
                return

    def _frame(self, size: tuple[int, int]) -> str:
        """A visible first frame: size the default layer, fill it with a solid colour, sync."""
        width, height = str(size[0]), str(size[1])
        return (
            encode("size", "0", width, height)
            + encode("rect", "0", "0", "0", width, height)
            + encode("cfill", "14", "0", "32", "128", "224", "255")
            + encode("sync", "1")
        )

    def _expect_next(self, standin: GuacdStandIn, keep_alive: bool = False) -> tuple[str, ...] | None:
        """The next instruction, or None when the client closed; sends `nop` while idle as guacd does."""
        while not self.pending:
            try:
                data = self.request.recv(65536)
            except TimeoutError:
                if keep_alive:
                    self._send(encode("nop"))
                continue
            if not data:
                return None
            self.pending.extend(self.parser.feed(data))
        return self.pending.pop(0)

    def _refuse(self, standin: GuacdStandIn, record: StandInConnection, reason: str) -> None:
        standin.record(lambda: setattr(record, "refused", reason))
        self._send(encode("error", reason, "519"))

    def _send(self, text: str) -> None:
        self.request.sendall(text.encode("utf-8"))
