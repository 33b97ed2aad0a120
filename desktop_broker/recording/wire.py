"""The Guacamole protocol's instruction syntax (LENGTH.VALUE elements, ',' between, ';' after; lengths count
Unicode code points), as guacd writes it: enough for a client that only keeps a connection open."""

import codecs

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
