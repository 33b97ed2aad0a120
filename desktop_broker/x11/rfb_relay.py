"""The RFB messages between a browser and a seat's x11vnc, read one by one, so the display rules hold in the gateway.

Why not copy bytes: the clipboard directions were x11vnc's flags alone, and x11vnc is only as trustworthy as its
seat. An app that took its place (review finding F5) could send cut text the browser would take whatever the rules
say. So the relay drops every cut text message (ServerCutText, RFC 6143 §7.6.4; ClientCutText, §7.5.6) in a
direction the rules forbid. The Extended Clipboard's capability and request messages carry no clipboard content
and pass (noVNC pastes Unicode only after the seat's capabilities arrived); its notify, peek and provide do not.

Dropping a message means knowing where each one ends, and a FramebufferUpdate's length depends on its encodings:
the relay lets the browser ask only for the encodings it can measure (`MEASURED_ENCODINGS`, noVNC 1.3 still gets
Tight with JPEG), and ends the connection on any message or encoding it cannot measure (fail closed). The pixel
format, which raw and Tight data lengths depend on, may change only before the first FramebufferUpdateRequest:
x11vnc sends updates only when asked (continuous updates are never offered), so no update is in flight while it
changes.
"""

import asyncio
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from policy.rules import DisplayRules

Receive = Callable[[], Awaitable[bytes | None]]
Send = Callable[[bytes], Awaitable[None]]

_CHUNK = 64 * 1024
_RAW, _COPY_RECT, _RRE, _TIGHT, _ZRLE = 0, 1, 2, 7, 16
_CURSOR, _DESKTOP_SIZE, _LAST_RECT, _QEMU_KEY_EVENT = -239, -223, -224, -258
_DESKTOP_NAME = -307
_EXTENDED_CLIPBOARD = struct.unpack(">i", struct.pack(">I", 0xC0A1E5CE))[0]
_QUALITY_LEVELS, _COMPRESS_LEVELS = range(-32, -22), range(-256, -246)
MEASURED_ENCODINGS = frozenset(
    {_RAW, _COPY_RECT, _RRE, _TIGHT, _ZRLE, _CURSOR, _DESKTOP_SIZE, _LAST_RECT, _QEMU_KEY_EVENT, _DESKTOP_NAME}
    | {_EXTENDED_CLIPBOARD, *_QUALITY_LEVELS, *_COMPRESS_LEVELS}
)
"""What the browser may ask x11vnc for. Left out: Hextile and TightPNG (not measured here; Tight serves noVNC),
continuous updates and fences (updates must stay answers to requests, see above), xvp and VMware's cursor, and
ExtendedDesktopSize (-308): a seat's display has a fixed size the page scales (noVNC's remote resize is off), and
x11vnc answers a client that asks for it with a first update holding only the screen layout (one -308 rectangle, 36
bytes, seen in the relay), the picture following in a later turn of its loop (docs/broker.md has the figures).
DesktopSize (-223) still tells noVNC of a size change."""
_CONTENTLESS_CLIPBOARD_ACTIONS = (1 << 24) | (1 << 25)  # Extended Clipboard: caps, request
_CLIPBOARD_ACTIONS = 0x1F << 24  # caps, request, peek, notify, provide


class RfbRelayRefused(Exception):
    """A message the relay cannot measure or must not pass: the seat connection is closed (fail closed)."""


class BufferedReceive:
    """The browser's messages as a byte stream: the handshake and the relay read exact sizes."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._pending = b""

    async def exactly(self, size: int) -> bytes:
        """`size` bytes; EOFError when the browser leaves first."""
        while len(self._pending) < size:
            message = await self._receive()
            if message is None:
                raise EOFError("the browser left in the middle of an RFB message")
            self._pending += message
        data, self._pending = self._pending[:size], self._pending[size:]
        return data

    async def ended(self) -> bool:
        """True when the browser left with nothing unread; else at least one byte waits (between two messages)."""
        while not self._pending:
            message = await self._receive()
            if message is None:
                return True
            self._pending = message
        return False

    async def __call__(self) -> bytes | None:
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        return await self._receive()


@dataclass(slots=True)
class _Connection:
    """What both directions need to know: the pixel format updates are sent in, and whether one was asked for."""

    bytes_per_pixel: int = 4
    tight_pixel_size: int = 3
    update_requested: bool = False
    server_init_seen: asyncio.Event = field(default_factory=asyncio.Event)

    def set_pixel_format(self, pixel_format: bytes) -> None:
        """RFC 6143 §7.4: bits per pixel, depth, big-endian, true colour, red/green/blue max, shifts."""
        bits, depth, _big_endian, true_colour, red, green, blue = struct.unpack(">BBBBHHH", pixel_format[:10])
        if bits not in (8, 16, 32):
            raise RfbRelayRefused(f"a pixel format of {bits} bits per pixel")
        self.bytes_per_pixel = bits // 8
        # Tight sends 24-bit true colour pixels as 3 bytes (TPIXEL): rfbproto, "Tight Encoding".
        packed = bits == 32 and depth == 24 and true_colour and red == green == blue == 255
        self.tight_pixel_size = 3 if packed else self.bytes_per_pixel


async def _cut_text_header(read: Callable[[int], Awaitable[bytes]]) -> tuple[bytes, int, bytes | None]:
    """A cut text message after its type: (header as read, payload bytes left, Extended Clipboard flags or None).

    A negative length announces the Extended Clipboard: its first 4 bytes are flags (caps, request, peek, notify,
    provide and the formats)."""
    header = await read(7)
    length = struct.unpack(">3xi", header)[0]
    if length >= 0:
        return header, length, None
    if -length < 4:
        raise RfbRelayRefused(f"an Extended Clipboard message of {-length} bytes, too short for its flags")
    flags = await read(4)
    return header + flags, -length - 4, flags


def _cut_text_may_pass(allowed: bool, flags: bytes | None) -> bool:
    """Whether a cut text message crosses: always where allowed, else only Extended Clipboard caps and requests
    (`flags` None: plain Latin-1 text)."""
    if allowed:
        return True
    if flags is None:
        return False
    actions = int.from_bytes(flags, "big") & _CLIPBOARD_ACTIONS
    return actions != 0 and actions & ~_CONTENTLESS_CLIPBOARD_ACTIONS == 0


class _SeatToBrowser:
    """x11vnc's side: ServerInit, then server messages (RFC 6143 §7.3.2, §7.6), batched into websocket messages."""

    def __init__(self, seat: asyncio.StreamReader, send: Send, connection: _Connection, clipboard_out: bool) -> None:
        self._seat = seat
        self._send = send
        self._connection = connection
        self._clipboard_out = clipboard_out
        self._pending = bytearray()

    async def run(self) -> None:
        server_init = await self._read(24)
        self._connection.set_pixel_format(server_init[4:20])
        self._connection.server_init_seen.set()
        await self._pass(struct.unpack(">I", server_init[20:24])[0])  # the desktop's name
        await self._flush()
        while kind := await self._seat.read(1):
            await self._message(kind[0])
            await self._flush()

    async def _message(self, kind: int) -> None:
        if kind == 3:  # ServerCutText
            header, rest, flags = await _cut_text_header(self._seat.readexactly)
            if _cut_text_may_pass(self._clipboard_out, flags):
                self._pending += bytes([kind]) + header
                await self._pass(rest)
            else:
                await self._skip(rest)
            return
        if kind in (0, 1) and not self._connection.update_requested:
            # Pixels are measured in the format the browser set before it asked; an update nobody asked for would be
            # measured in the seat's own, and a seat that chose it could hide a message for the browser in them.
            raise RfbRelayRefused("the seat sent pixels before the browser asked for an update")
        self._pending.append(kind)
        if kind == 0:  # FramebufferUpdate
            for _ in range(struct.unpack(">xH", await self._read(3))[0]):
                _x, _y, width, height, encoding = struct.unpack(">HHHHi", await self._read(12))
                if encoding == _LAST_RECT:
                    break
                await self._rectangle(encoding, width, height)
        elif kind == 1:  # SetColourMapEntries
            await self._pass(6 * struct.unpack(">xHH", await self._read(5))[1])
        elif kind != 2:  # Bell has no body
            raise RfbRelayRefused(f"the seat sent RFB message type {kind}, which the relay cannot measure")

    async def _rectangle(self, encoding: int, width: int, height: int) -> None:
        pixel = self._connection.bytes_per_pixel
        if encoding == _RAW:
            await self._pass(width * height * pixel)
        elif encoding == _COPY_RECT:
            await self._pass(4)
        elif encoding == _RRE:
            header = await self._read(4 + pixel)
            await self._pass(struct.unpack(">I", header[:4])[0] * (pixel + 8))
        elif encoding in (_ZRLE, _DESKTOP_NAME):
            await self._pass(struct.unpack(">I", await self._read(4))[0])
        elif encoding == _TIGHT:
            await self._tight(width, height)
        elif encoding == _CURSOR:
            await self._pass(width * height * pixel + (width + 7) // 8 * height)
        elif encoding not in (_DESKTOP_SIZE, _QEMU_KEY_EVENT):
            raise RfbRelayRefused(f"the seat sent a rectangle in encoding {encoding}, which was not asked for")

    async def _tight(self, width: int, height: int) -> None:
        """rfbproto, "Tight Encoding": a control byte, then a fill pixel, a JPEG, or (filtered) zlib data."""
        control = (await self._read(1))[0]
        pixel = self._connection.tight_pixel_size
        method = control >> 4
        if method == 8:  # fill
            await self._pass(pixel)
            return
        if method == 9:  # JPEG
            await self._pass(await self._compact_length())
            return
        if method > 9:
            raise RfbRelayRefused(f"Tight compression method {method} (TightPNG was not asked for)")
        row = width * pixel
        if control & 0x40:
            tight_filter = (await self._read(1))[0]
            if tight_filter == 1:  # palette: 1 bit per pixel for 2 colours, else 1 byte
                colours = (await self._read(1))[0] + 1
                await self._pass(colours * pixel)
                row = (width + 7) // 8 if colours == 2 else width
            elif tight_filter not in (0, 2):  # copy, gradient
                raise RfbRelayRefused(f"Tight filter {tight_filter}")
        size = row * height
        await self._pass(size if size < 12 else await self._compact_length())

    async def _compact_length(self) -> int:
        """Tight's 1-3 byte length: 7 bits per byte, high bit set while another follows; the third has 8."""
        length, shift = 0, 0
        for position in range(3):
            byte = (await self._read(1))[0]
            length |= (byte if position == 2 else byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        return length

    async def _read(self, size: int) -> bytes:
        """Read a header field and keep it for the browser."""
        data = await self._seat.readexactly(size)
        self._pending += data
        return data

    async def _pass(self, size: int) -> None:
        """Forward `size` bytes of payload, a chunk at a time."""
        while size > 0:
            chunk = await self._seat.readexactly(min(size, _CHUNK))
            size -= len(chunk)
            self._pending += chunk
            if len(self._pending) >= _CHUNK:
                await self._flush()

    async def _skip(self, size: int) -> None:
        while size > 0:
            size -= len(await self._seat.readexactly(min(size, _CHUNK)))

    async def _flush(self) -> None:
        if self._pending:
            data = bytes(self._pending)
            self._pending.clear()
            await self._send(data)


class _BrowserToSeat:
    """The browser's side: ClientInit, then client messages (RFC 6143 §7.3.1, §7.5), one write each."""

    def __init__(
        self, browser: BufferedReceive, seat: asyncio.StreamWriter, connection: _Connection, clipboard_in: bool
    ) -> None:
        self._browser = browser
        self._seat = seat
        self._connection = connection
        self._clipboard_in = clipboard_in

    async def run(self) -> None:
        self._seat.write(await self._browser.exactly(1))  # ClientInit: the shared flag
        await self._seat.drain()
        await self._connection.server_init_seen.wait()  # the server's pixel format first, then the browser's
        while not await self._browser.ended():
            kind = (await self._browser.exactly(1))[0]
            if kind == 6:  # ClientCutText
                await self._cut_text(kind)
            else:
                self._seat.write(await self._message(kind))
            await self._seat.drain()

    async def _cut_text(self, kind: int) -> None:
        """Send it on, a chunk at a time, or read it to its end and drop it."""
        header, rest, flags = await _cut_text_header(self._browser.exactly)
        passes = _cut_text_may_pass(self._clipboard_in, flags)
        if passes:
            self._seat.write(bytes([kind]) + header)
        while rest > 0:
            chunk = await self._browser.exactly(min(rest, _CHUNK))
            rest -= len(chunk)
            if passes:
                self._seat.write(chunk)
                await self._seat.drain()

    async def _message(self, kind: int) -> bytes:
        """One message other than cut text, as it goes on to x11vnc."""
        read = self._browser.exactly
        if kind == 0:  # SetPixelFormat
            if self._connection.update_requested:
                raise RfbRelayRefused("the browser changed the pixel format after asking for an update")
            body = await read(19)
            self._connection.set_pixel_format(body[3:])
            return bytes([kind]) + body
        if kind == 2:  # SetEncodings: only those the relay can measure
            count = struct.unpack(">xH", await read(3))[0]
            asked = struct.unpack(f">{count}i", await read(4 * count))
            kept = [encoding for encoding in asked if encoding in MEASURED_ENCODINGS]
            return struct.pack(f">BxH{len(kept)}i", kind, len(kept), *kept)
        if kind == 3:  # FramebufferUpdateRequest
            self._connection.update_requested = True
            return bytes([kind]) + await read(9)
        if kind in _FIXED_CLIENT_MESSAGES:
            return bytes([kind]) + await read(_FIXED_CLIENT_MESSAGES[kind])
        if kind == 251:  # SetDesktopSize
            header = await read(7)
            return bytes([kind]) + header + await read(16 * header[5])
        if kind == 255:  # QEMU client message: only the extended key event (subtype 0)
            body = await read(11)
            if body[0] != 0:
                raise RfbRelayRefused(f"QEMU client message subtype {body[0]}")
            return bytes([kind]) + body
        raise RfbRelayRefused(f"the browser sent RFB message type {kind}, which the relay cannot measure")


_FIXED_CLIENT_MESSAGES = {4: 7, 5: 5}
"""Body sizes after the type byte: KeyEvent, PointerEvent."""


async def relay(
    browser: BufferedReceive,
    send: Send,
    seat: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    rules: DisplayRules,
) -> None:
    """Relay RFB both ways from ClientInit on, until either side closes; cut text crosses only as `rules` allow.

    Raises `RfbRelayRefused` (after closing nothing: the caller closes the seat connection) on a message it cannot
    measure."""
    connection = _Connection()
    reader, writer = seat
    tasks = [
        asyncio.create_task(_BrowserToSeat(browser, writer, connection, rules.clipboard_in).run()),
        asyncio.create_task(_SeatToBrowser(reader, send, connection, rules.clipboard_out).run()),
    ]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
