"""A copy of a seat's screen kept over one view-only RFB connection: the supervisors' screen wall reads it.

The connection authenticates with the seat's VIEW-ONLY password, so x11vnc ignores anything it could send, and this
client sends nothing but FramebufferUpdateRequests (RFC 6143 §7.5.3) — view-only by construction, twice. It asks for
raw encoding in 32-bit BGRX, applies each updated rectangle to its copy, and asks again only when the caller
refreshes: an incremental request is answered when something changed, so a still screen costs nothing.
"""

import select
import socket
import struct
import time
from typing import cast

from PIL import Image

from desktop_broker.x11.rfb_probe import RFB_VERSION, vnc_auth_response
from desktop_broker.x11.spec import RfbAddress

_VNC_AUTH = 2
_RAW = 0
_FRAMEBUFFER_UPDATE, _COLOUR_MAP, _BELL, _CUT_TEXT = 0, 1, 2, 3
# SetPixelFormat: 32 bits per pixel, depth 24, little-endian, true colour, 8-bit channels at 16/8/0: B, G, R, X bytes.
_PIXEL_FORMAT = struct.pack(">BxxxBBBBHHHBBBxxx", 0, 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)


class ScreenCopyFailed(Exception):
    """The seat refused or dropped the connection; the next refresh reconnects."""


class ScreenCopy:
    """The latest picture of one seat's screen (``frame``: BGRX rows of ``width`` pixels)."""

    def __init__(self, address: RfbAddress, view_only_password: str, timeout: float = 5.0) -> None:
        self._address, self._password, self._timeout = address, view_only_password, timeout
        self._sock: socket.socket | None = None
        self._asked = False
        self.width = self.height = 0
        self.frame = bytearray()
        self.cpu_seconds = 0.0
        """CPU time spent reading updates (the wall's cost of this seat, beside the encoding)."""

    def refresh(self, wait: float = 0.0) -> bool:
        """Apply what changed since the last refresh (waiting up to ``wait`` s for it); True if anything did."""
        started = time.thread_time()
        try:
            if self._sock is None:
                self._connect()
            assert self._sock is not None
            if not self._asked:
                self._sock.sendall(struct.pack(">BBHHHH", 3, 1, 0, 0, self.width, self.height))
                self._asked = True
            while select.select([self._sock], [], [], wait)[0]:
                if self._message():
                    return True
            return False
        except (OSError, struct.error, ScreenCopyFailed) as error:
            self.close()
            raise ScreenCopyFailed(f"{self._address}: {error}") from error
        finally:
            self.cpu_seconds += time.thread_time() - started

    def reduced(self, factor: int) -> Image.Image:
        """The screen reduced ``factor`` times, as RGB."""
        frame = cast(bytes, self.frame)  # Pillow reads any buffer; a copy of 4 MB per picture would be waste
        return Image.frombuffer("RGB", (self.width, self.height), frame, "raw", "BGRX", 0, 1).reduce(factor)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock, self._asked = None, False

    def _connect(self) -> None:
        sock = socket.create_connection((self._address.host, self._address.port), timeout=self._timeout)
        try:
            sock.sendall(RFB_VERSION)  # before the server's greeting, which it then sends at once (rfb_probe)
            if not _recv(sock, 12).startswith(b"RFB 003."):
                raise ScreenCopyFailed("the seat does not speak RFB")
            if _VNC_AUTH not in _recv(sock, _recv(sock, 1)[0]):
                raise ScreenCopyFailed("the seat offers no VNC authentication")
            sock.sendall(bytes([_VNC_AUTH]))
            sock.sendall(vnc_auth_response(self._password, _recv(sock, 16)))
            if struct.unpack(">I", _recv(sock, 4))[0] != 0:
                raise ScreenCopyFailed("the seat refused the view-only password")
            sock.sendall(b"\x01")  # ClientInit: shared, so the agent's own connection stays
            self.width, self.height = struct.unpack(">HH", _recv(sock, 4))
            _recv(sock, 16)
            _recv(sock, struct.unpack(">I", _recv(sock, 4))[0])
            sock.sendall(_PIXEL_FORMAT + struct.pack(">BxHi", 2, 1, _RAW))
            sock.sendall(struct.pack(">BBHHHH", 3, 0, 0, 0, self.width, self.height))  # the whole screen first
        except BaseException:
            sock.close()
            raise
        self.frame = bytearray(self.width * self.height * 4)
        self._sock, self._asked = sock, True

    def _message(self) -> bool:
        """Read one server message; True when it was a framebuffer update (then the next request may go)."""
        assert self._sock is not None
        kind = _recv(self._sock, 1)[0]
        if kind == _FRAMEBUFFER_UPDATE:
            (count,) = struct.unpack(">xH", _recv(self._sock, 3))
            for _ in range(count):
                self._rectangle(*struct.unpack(">HHHHi", _recv(self._sock, 12)))
            self._asked = False
            return True
        if kind == _COLOUR_MAP:
            _, _, colours = struct.unpack(">BHH", _recv(self._sock, 5))
            _recv(self._sock, colours * 6)
        elif kind == _CUT_TEXT:
            _recv(self._sock, struct.unpack(">xxxI", _recv(self._sock, 7))[0])
        elif kind != _BELL:
            raise ScreenCopyFailed(f"unexpected server message {kind}")
        return False

    def _rectangle(self, x: int, y: int, width: int, height: int, encoding: int) -> None:
        if encoding != _RAW:
            raise ScreenCopyFailed(f"unexpected encoding {encoding}")
        assert self._sock is not None
        data = _recv(self._sock, width * height * 4)
        row = width * 4
        for line in range(height):
            start = ((y + line) * self.width + x) * 4
            self.frame[start : start + row] = data[line * row : (line + 1) * row]


def _recv(sock: socket.socket, size: int) -> bytes:
    chunks, missing = [], size
    while missing:
        chunk = sock.recv(min(missing, 1 << 20))
        if not chunk:
            raise ScreenCopyFailed("the seat closed the connection")
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)
