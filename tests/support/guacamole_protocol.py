"""The Guacamole protocol's instruction syntax, as guacd and guacamole-common-js read it.

LENGTH.VALUE elements, comma separated, ';' terminated; lengths count Unicode code points. Shared by the
wire tap in front of the real guacd (tests/support/guacd.py) and the protocol stand-in's malformed-input tests.
"""

import codecs

MAX_ELEMENT = 8 * 1024 * 1024
"""Refuse absurd length prefixes instead of buffering without end."""


class ProtocolError(ValueError):
    """Bytes that are not a well-formed Guacamole instruction stream."""


def encode(*elements: str) -> str:
    """One instruction: LENGTH.VALUE elements, comma separated, ';' terminated; lengths in code points."""
    return ",".join(f"{len(element)}.{element}" for element in elements) + ";"


class InstructionParser:
    """Incremental parser: feed it bytes as they arrive, get complete instructions back."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
        self._buffer = ""
        self._elements: list[str] = []

    def feed(self, data: bytes) -> list[tuple[str, ...]]:
        try:
            self._buffer += self._decoder.decode(data)
        except UnicodeDecodeError as error:
            raise ProtocolError(f"not UTF-8: {error}") from error
        instructions: list[tuple[str, ...]] = []
        while (element := self._next_element()) is not None:
            value, terminator = element
            self._elements.append(value)
            if terminator == ";":
                instructions.append(tuple(self._elements))
                self._elements = []
        return instructions

    def _next_element(self) -> tuple[str, str] | None:
        dot = self._buffer.find(".")
        if dot == -1:
            if self._buffer and not self._buffer.isdigit():
                raise ProtocolError(f"length prefix is not a number: {self._buffer[:20]!r}")
            return None
        prefix = self._buffer[:dot]
        if not prefix.isascii() or not prefix.isdigit():
            raise ProtocolError(f"length prefix is not a number: {prefix[:20]!r}")
        length = int(prefix)
        if length > MAX_ELEMENT:
            raise ProtocolError(f"element of {length} characters is larger than {MAX_ELEMENT}")
        end = dot + 1 + length
        if len(self._buffer) <= end:
            return None
        terminator = self._buffer[end]
        if terminator not in ",;":
            raise ProtocolError(f"element of declared length {length} is followed by {terminator!r}, not ',' or ';'")
        value = self._buffer[dot + 1 : end]
        self._buffer = self._buffer[end + 1 :]
        return value, terminator
