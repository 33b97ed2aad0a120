"""The Guacamole protocol's instruction syntax (LENGTH.VALUE elements, ',' between, ';' after; lengths count
Unicode code points), as guacd writes it, and a client's handshake: enough for the gateway's own connections to guacd
(a recording of an X11 seat, the screen wall's join of a Guacamole seat)."""

import codecs
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass

MAX_ELEMENT = 8 * 1024 * 1024
"""Refuse absurd length prefixes instead of buffering without end."""


class WireError(ValueError):
    """Bytes that are not a well-formed Guacamole instruction stream."""


def encode(*elements: str) -> bytes:
    return (",".join(f"{len(element)}.{element}" for element in elements) + ";").encode()


class InstructionReader:
    """Incremental parser: feed it bytes as they arrive, get complete instructions back."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
        self._buffer = ""
        self._elements: list[str] = []

    def feed(self, data: bytes) -> list[tuple[str, ...]]:
        try:
            self._buffer += self._decoder.decode(data)
        except UnicodeDecodeError as error:
            raise WireError(f"not UTF-8: {error}") from error
        instructions: list[tuple[str, ...]] = []
        position = 0
        while True:
            dot = self._buffer.find(".", position)
            if dot == -1:
                break
            prefix = self._buffer[position:dot]
            if not prefix.isascii() or not prefix.isdigit() or int(prefix) > MAX_ELEMENT:
                raise WireError(f"bad length prefix {prefix[:20]!r}")
            end = dot + 1 + int(prefix)
            if len(self._buffer) <= end:
                break
            terminator = self._buffer[end]
            if terminator not in ",;":
                raise WireError(f"element followed by {terminator!r}, not ',' or ';'")
            self._elements.append(self._buffer[dot + 1 : end])
            position = end + 1
            if terminator == ";":
                instructions.append(tuple(self._elements))
                self._elements = []
        self._buffer = self._buffer[position:]
        return instructions


class HandshakeRefused(Exception):
    """guacd answered the handshake with an error, closed the connection or did not finish it in time."""


@dataclass(frozen=True, slots=True)
class ClientHandshake:
    """What a client tells guacd between ``select`` and ``connect``."""

    size: tuple[int, int, int]
    """Its optimal screen width, height and DPI."""
    image_types: tuple[str, ...]
    """The image mimetypes it decodes (guacd encodes once for all users of a connection)."""
    timezone: str | None = None


def handshake(
    sock: socket.socket, selector: str, values: Mapping[str, str], client: ClientHandshake, timeout: float
) -> tuple[str, InstructionReader, list[tuple[str, ...]]]:
    """``select`` a protocol (or a ``$…`` connection to join), answer guacd's ``args`` with ``values`` (every other
    argument empty), wait for ``ready``. Returns ready's id, the reader, and what guacd sent after ``ready``.

    No audio or video type is offered. The first of guacd's ``args`` is its protocol version; answering with it
    selects that version.
    """
    reader, pending = InstructionReader(), list[tuple[str, ...]]()

    def expect(opcode: str) -> tuple[str, ...]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while pending:
                instruction = pending.pop(0)
                if instruction[0] == opcode and len(instruction) > 1:
                    return instruction
                if instruction[0] == "error":
                    raise HandshakeRefused(" ".join(instruction[1:]))
            data = sock.recv(65536)
            if not data:
                raise HandshakeRefused("guacd closed the connection during the handshake")
            pending.extend(reader.feed(data))
        raise HandshakeRefused(f"no {opcode!r} from guacd within {timeout} s")

    sock.sendall(encode("select", selector))
    args = expect("args")
    answer = encode("size", *map(str, client.size)) + encode("audio") + encode("video")
    answer += encode("image", *client.image_types)
    if client.timezone is not None:
        answer += encode("timezone", client.timezone)
    sock.sendall(answer + encode("connect", args[1], *(values.get(name, "") for name in args[2:])))
    return expect("ready")[1], reader, pending
