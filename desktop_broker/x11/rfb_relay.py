"""The RFB messages between a browser and a seat's x11vnc, read one by one, so the display rules hold in the gateway.

Why not copy bytes: the clipboard directions were x11vnc's flags alone, and x11vnc is only as trustworthy as its
seat. An app that took its place (review finding F5) could send cut text the browser would take whatever the rules
say. So the relay drops every cut text message (ServerCutText, RFC 6143 §7.6.4; ClientCutText, §7.5.6) in a
direction the rules forbid. The Extended Clipboard's capability and request messages carry no clipboard content
and pass (noVNC pastes Unicode only after the seat's capabilities arrived); its notify, peek and provide do not.

Dropping a message means knowing where each one ends, and a FramebufferUpdate's length depends on its encodings:
the relay lets the browser ask only for the encodings it can measure (`MEASURED_ENCODINGS`, noVNC 1.3 still gets
Tight with JPEG), and ends the connection on any message or encoding it cannot measure (fail closed). The pixel
format, which raw and Tight data lengths depend on, may change only while no update is asked for: x11vnc sends
updates only when asked (continuous updates are never offered), so no update is in flight while it changes.

The relay starts after ServerInit, usually with the first picture already asked for by the gateway
(`rfb_first_update`): what x11vnc sends is then held until the browser's first request arrives. The same request:
the held answer goes out at once, and the browser's request goes no further. Another: `FirstRequestDiffers`, with
what the browser said put back to be read again, for the caller to relay on a connection of its own.
"""

import asyncio
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from desktop_broker.x11.rfb_first_update import SeatConnection
from policy.rules import DisplayRules

Receive = Callable[[], Awaitable[bytes | None]]
Send = Callable[[bytes], Awaitable[None]]

_CHUNK = 64 * 1024
HOLD_LIMIT = 4 * 1024 * 1024
"""Bytes of the seat's answer held before the browser asked for it: a full 1280x800 raw screen of 32-bit pixels.
Past it the relay reads no more until the browser asks, and the rest waits in x11vnc's socket: a browser that never
asks, or a seat that sends a huge selection first, costs the gateway no more than this."""
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


class FirstRequestDiffers(Exception):
    """The browser's first messages are not the request the gateway made for it; they are back in its
    `BufferedReceive`, to be read again."""


class BufferedReceive:
    """The browser's messages as a byte stream: the handshake and the relay read exact sizes."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._pending = b""
        self._kept: bytearray | None = None

    def keep(self) -> None:
        """From now on, keep what is read, so that `rewind` can put it back."""
        self._kept = bytearray()

    def rewind(self) -> None:
        """Put back what was read since `keep`, to be read again; keep nothing more."""
        if self._kept is not None:
            self._pending, self._kept = bytes(self._kept) + self._pending, None

    def forget(self) -> None:
        """Keep nothing more of what is read."""
        self._kept = None

    async def exactly(self, size: int) -> bytes:
        """`size` bytes; EOFError when the browser leaves first."""
        while len(self._pending) < size:
            message = await self._receive()
            if message is None:
                raise EOFError("the browser left in the middle of an RFB message")
            self._pending += message
        data, self._pending = self._pending[:size], self._pending[size:]
        if self._kept is not None:
            self._kept += data
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
    """What both directions need to know: the pixel format updates are sent in, whether one was asked for, and whether
    the browser asked the same as the gateway's own first request (`rfb_first_update`)."""

    bytes_per_pixel: int = 4
    tight_pixel_size: int = 3
    update_requested: bool = False
    browser_asked_the_same: asyncio.Event = field(default_factory=asyncio.Event)

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
    """x11vnc's side after ServerInit: server messages (RFC 6143 §7.6), batched into websocket messages."""

    def __init__(
        self, seat: asyncio.StreamReader, send: Send, connection: _Connection, clipboard_out: bool, holding: bool
    ) -> None:
        self._seat = seat
        self._send = send
        self._connection = connection
        self._clipboard_out = clipboard_out
        self._pending = bytearray()
        self._holding = holding
        """Until the answer to the gateway's first request is read: messages wait in `_pending` for the browser."""

    async def run(self) -> None:
        while kind := await self._seat.read(1):
            await self._message(kind[0])
            if self._holding:
                if kind[0] != 0:  # held with the first update: x11vnc's clipboard capabilities come before it
                    continue
                await self._until_the_browser_asked()
            await self._flush()

    async def _until_the_browser_asked(self) -> None:
        self._holding = False
        await self._connection.browser_asked_the_same.wait()

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
            if self._holding and len(self._pending) >= HOLD_LIMIT:
                await self._until_the_browser_asked()
            if len(self._pending) >= _CHUNK and not self._holding:
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
    """The browser's side after ClientInit: client messages (RFC 6143 §7.5), one write each."""

    def __init__(
        self, browser: BufferedReceive, seat: SeatConnection, connection: _Connection, clipboard_in: bool
    ) -> None:
        self._browser = browser
        self._seat = seat.writer
        self._unanswered = seat.asked
        """What is left of the gateway's first request for the browser's own to match, message by message."""
        self._connection = connection
        self._clipboard_in = clipboard_in

    async def run(self) -> None:
        if self._unanswered:
            self._browser.keep()
        while not await self._browser.ended():
            kind = (await self._browser.exactly(1))[0]
            if kind == 6:  # ClientCutText
                self._differs_from_first_request(kind)
                await self._cut_text(kind)
                continue
            message = await self._message(kind)
            if self._unanswered:
                if not self._unanswered.startswith(message):
                    self._differs_from_first_request(kind)
                self._unanswered = self._unanswered[len(message) :]  # the gateway asked x11vnc this already
                if not self._unanswered:
                    self._browser.forget()
                    self._connection.browser_asked_the_same.set()
                continue
            self._take(message)
            self._seat.write(message)
            await self._seat.drain()

    def _differs_from_first_request(self, kind: int) -> None:
        """The browser asks otherwise than the gateway did: what it said goes back for a connection of its own."""
        if self._unanswered:
            self._browser.rewind()
            raise FirstRequestDiffers(f"the browser's first request is not noVNC 1.3's (message type {kind})")

    def _take(self, message: bytes) -> None:
        """What a message on its way to x11vnc changes: the pixel format, and whether an update is asked for."""
        if message[0] == 0:  # SetPixelFormat
            if self._connection.update_requested:
                raise RfbRelayRefused("the browser changed the pixel format after asking for an update")
            self._connection.set_pixel_format(message[4:])
        elif message[0] == 3:  # FramebufferUpdateRequest
            self._connection.update_requested = True

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
        """One message other than cut text, as it would go on to x11vnc (`_take` applies what it changes)."""
        read = self._browser.exactly
        if kind == 0:  # SetPixelFormat
            return bytes([kind]) + await read(19)
        if kind == 2:  # SetEncodings: only those the relay can measure
            count = struct.unpack(">xH", await read(3))[0]
            asked = struct.unpack(f">{count}i", await read(4 * count))
            kept = [encoding for encoding in asked if encoding in MEASURED_ENCODINGS]
            return struct.pack(f">BxH{len(kept)}i", kind, len(kept), *kept)
        if kind == 3:  # FramebufferUpdateRequest
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


async def relay(browser: BufferedReceive, send: Send, seat: SeatConnection, rules: DisplayRules) -> None:
    """Relay RFB both ways from the browser's first message after ClientInit on, until either side closes; cut text
    crosses only as `rules` allow. The browser has had ServerInit; `seat` may have its first update asked for.

    Raises `RfbRelayRefused` (after closing nothing: the caller closes the seat connection) on a message it cannot
    measure, and `FirstRequestDiffers` when the browser's first messages are not what the gateway asked for it."""
    connection = _Connection(update_requested=bool(seat.asked))
    # The first request starts with SetPixelFormat; without one, updates come in the server's format.
    connection.set_pixel_format(seat.asked[4:] if seat.asked else seat.server_init[4:20])
    tasks = [
        asyncio.create_task(_BrowserToSeat(browser, seat, connection, rules.clipboard_in).run()),
        asyncio.create_task(
            _SeatToBrowser(seat.reader, send, connection, rules.clipboard_out, holding=bool(seat.asked)).run()
        ),
    ]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
