"""The gateway's RFB relay against a stand-in server that sends what a seat's x11vnc may send, and what an app that took
x11vnc's place could (review finding F5): cut text against the rules. Every other byte must reach the browser exactly
as sent, which needs the relay to find where each message ends in every encoding it lets the browser ask for.

The real x11vnc and noVNC in Chromium: test_x11_browser.py.
"""

import asyncio
import contextlib
import struct

import pytest

from desktop_broker.x11 import RfbAddress, bridge_websocket_to_rfb
from desktop_broker.x11.rfb_relay import MEASURED_ENCODINGS, RfbRelayRefused
from policy.rules import DisplayRules

NOTHING_ALLOWED = DisplayRules()
BOTH_WAYS = DisplayRules(clipboard_in=True, clipboard_out=True)
# 32 bits per pixel, depth 24, little-endian, true colour, 255 per channel: what x11vnc announces and noVNC keeps.
PIXEL_FORMAT = struct.pack(">BBBBHHHBBB3x", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)
SERVER_INIT = struct.pack(">HH", 1280, 800) + PIXEL_FORMAT + struct.pack(">I", 9) + b"SOHO seat"
UPDATE_REQUEST = struct.pack(">BBHHHH", 3, 0, 0, 0, 1280, 800)
"""What noVNC sends once its pixel format and encodings are set: the first FramebufferUpdateRequest."""
CAPS = 1 << 24
PROVIDE = 1 << 28
TEXT = 1


def _rect(width: int, height: int, encoding: int, payload: bytes) -> bytes:
    return struct.pack(">HHHHi", 0, 0, width, height, encoding) + payload


def _update(*rects: bytes, count: int | None = None) -> bytes:
    return struct.pack(">BxH", 0, len(rects) if count is None else count) + b"".join(rects)


def _plain_cut_text(text: bytes) -> bytes:
    return struct.pack(">B3xi", 3, len(text)) + text


def _extended_cut_text(kind: int, flags: int, body: bytes) -> bytes:
    return struct.pack(">B3xiI", kind, -(4 + len(body)), flags) + body


# One of every rectangle the relay must measure, with payloads whose lengths depend on the pixel format and Tight.
EVERY_ENCODING = _update(
    _rect(2, 2, 0, bytes(range(16))),  # raw: 2*2 pixels of 4 bytes
    _rect(3, 3, 1, struct.pack(">HH", 7, 9)),  # CopyRect
    _rect(4, 4, 2, struct.pack(">I", 1) + b"\x01\x02\x03\x04" + b"\x05\x06\x07\x08" + bytes(8)),  # RRE, 1 subrect
    _rect(8, 8, 16, struct.pack(">I", 5) + b"zrle!"),  # ZRLE
    _rect(8, 8, 7, b"\x80" + b"\x10\x20\x30"),  # Tight fill: one 3-byte pixel
    _rect(8, 8, 7, b"\x90" + b"\x85\x01" + bytes(133)),  # Tight JPEG with a 2-byte compact length (133)
    _rect(2, 1, 7, b"\x00" + bytes(6)),  # Tight copy, 6 bytes < 12: not compressed, no length
    _rect(16, 8, 7, b"\x40\x01\x01" + bytes(6) + b"\x04" + bytes(4)),  # Tight palette of 2: 1 bit/pixel = 16 B, zlib 4
    _rect(2, 2, -239, bytes(2 * 2 * 4) + bytes(2)),  # cursor: pixels and a 1-bit mask
    _rect(0, 0, -307, struct.pack(">I", 4) + b"name"),  # DesktopName
    _rect(0, 0, -224, b""),  # LastRect: the count said more, the update ends here
    count=0xFFFF,
)


async def _run(
    server_says: bytes, rules: DisplayRules, browser_says: bytes = b"\x01" + UPDATE_REQUEST, server_reads: int = 11
) -> tuple[bytes, bytes, BaseException | None]:
    """Bridge a browser that says `browser_says` (ClientInit first) to a server that reads `server_reads` bytes, then
    says ServerInit and `server_says` and hangs up. Returns (what the browser got, what the server got, the error)."""
    to_browser: list[bytes] = []
    server_got = bytearray()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server_got.extend(await reader.readexactly(1))  # ClientInit
        writer.write(SERVER_INIT)
        await writer.drain()
        with contextlib.suppress(TimeoutError):  # a dropped message never comes: wait a while for it all the same
            async with asyncio.timeout(2):
                while len(server_got) < server_reads and (chunk := await reader.read(server_reads - len(server_got))):
                    server_got.extend(chunk)
        writer.write(server_says)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    browser_messages = [browser_says]

    async def receive() -> bytes | None:
        if browser_messages:
            return browser_messages.pop()
        await asyncio.sleep(10)  # a browser that stays, saying nothing more
        return None

    async def send(data: bytes) -> None:
        to_browser.append(data)

    error: BaseException | None = None
    async with server:
        try:
            await asyncio.wait_for(bridge_websocket_to_rfb(receive, send, RfbAddress("127.0.0.1", port), rules), 8)
        except (RfbRelayRefused, EOFError) as raised:
            error = raised
    return b"".join(to_browser), bytes(server_got), error


def test_plain_cut_text_from_the_seat_is_dropped_and_everything_around_it_arrives_byte_for_byte() -> None:
    bell = b"\x02"
    got, _, error = asyncio.run(
        _run(EVERY_ENCODING + _plain_cut_text(b"customer-id-4711") + bell + EVERY_ENCODING, NOTHING_ALLOWED)
    )
    assert error is None
    assert got == SERVER_INIT + EVERY_ENCODING + bell + EVERY_ENCODING


def test_plain_cut_text_from_the_seat_arrives_where_clipboard_out_is_allowed() -> None:
    says = EVERY_ENCODING + _plain_cut_text(b"customer-id-4712")
    got, _, error = asyncio.run(_run(says, DisplayRules(clipboard_out=True)))
    assert error is None
    assert got == SERVER_INIT + says


def test_extended_clipboard_capabilities_cross_but_its_content_does_not() -> None:
    caps = _extended_cut_text(3, CAPS | TEXT, struct.pack(">I", 1 << 20))
    provide = _extended_cut_text(3, PROVIDE | TEXT, b"zlib-compressed customer data")
    got, _, error = asyncio.run(_run(caps + provide, NOTHING_ALLOWED))
    assert error is None
    assert got == SERVER_INIT + caps


def test_a_message_the_relay_cannot_measure_ends_the_connection() -> None:
    got, _, error = asyncio.run(_run(b"\x96" + _plain_cut_text(b"behind an unknown type"), BOTH_WAYS))
    assert isinstance(error, RfbRelayRefused)
    assert b"unknown type" not in got


def test_pixels_sent_before_the_browser_asked_for_an_update_end_the_connection() -> None:
    """Measured in the seat's own pixel format, not the browser's, such pixels could hide a cut text for noVNC."""
    hidden = _update(_rect(1, 64, 0, bytes(64 * 4))) + _plain_cut_text(b"hidden in pixels")
    got, _, error = asyncio.run(_run(hidden, NOTHING_ALLOWED, browser_says=b"\x01", server_reads=1))
    assert isinstance(error, RfbRelayRefused)
    assert got == SERVER_INIT


def test_a_rectangle_in_an_encoding_the_browser_could_not_ask_for_ends_the_connection() -> None:
    hextile = _update(_rect(16, 16, 5, b"\x01" + bytes(1024)))
    got, _, error = asyncio.run(_run(hextile + _plain_cut_text(b"hidden in hextile"), NOTHING_ALLOWED))
    assert isinstance(error, RfbRelayRefused)
    assert b"hidden" not in got


def test_the_browser_asks_only_for_encodings_the_relay_measures_and_its_paste_is_dropped_when_forbidden() -> None:
    hextile, tight, continuous_updates, fence, extended_desktop_size, raw = 5, 7, -313, -312, -308, 0
    set_encodings = struct.pack(">BxH6i", 2, 6, hextile, tight, continuous_updates, fence, extended_desktop_size, raw)
    paste = struct.pack(">B3xi", 6, 10) + b"home-note!"
    key = struct.pack(">BBxxI", 4, 1, 0x61)
    says = b"\x01" + set_encodings + paste + key
    _, server_got, error = asyncio.run(_run(b"", NOTHING_ALLOWED, says, server_reads=1 + 12 + len(key)))
    assert error is None
    assert server_got == b"\x01" + struct.pack(">BxH2i", 2, 2, tight, raw) + key
    assert {tight, raw} <= MEASURED_ENCODINGS


def test_the_browser_may_not_change_the_pixel_format_once_it_asked_for_an_update() -> None:
    """Updates already on their way would be measured in the wrong format."""
    request = struct.pack(">BBHHHH", 3, 0, 0, 0, 1280, 800)
    set_pixel_format = b"\x00\x00\x00\x00" + PIXEL_FORMAT
    _, server_got, error = asyncio.run(
        _run(b"", NOTHING_ALLOWED, b"\x01" + request + set_pixel_format, server_reads=1 + 10 + 20)
    )
    assert isinstance(error, RfbRelayRefused)
    assert server_got == b"\x01" + request


@pytest.mark.parametrize("rules", [NOTHING_ALLOWED, DisplayRules(clipboard_in=True)])
def test_a_paste_crosses_only_where_clipboard_in_is_allowed(rules: DisplayRules) -> None:
    paste = struct.pack(">B3xi", 6, 10) + b"home-note!"
    _, server_got, error = asyncio.run(_run(b"", rules, b"\x01" + paste, server_reads=1 + len(paste)))
    assert error is None
    assert (paste in server_got) is rules.clipboard_in
