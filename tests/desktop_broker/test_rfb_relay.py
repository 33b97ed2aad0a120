"""The gateway's RFB relay against a stand-in server that sends what a seat's x11vnc may send, and what an app that took
x11vnc's place could (review finding F5): cut text against the rules. Every other byte must reach the browser exactly
as sent, which needs the relay to find where each message ends in every encoding it lets the browser ask for.

The real x11vnc and noVNC in Chromium: test_x11_browser.py.
"""

import asyncio
import contextlib
import logging
import struct
from functools import partial

import pytest

from desktop_broker.x11 import bridge_websocket_to_rfb
from desktop_broker.x11.rfb_first_update import SeatConnection, first_request, start_viewing
from desktop_broker.x11.rfb_relay import HOLD_LIMIT, MEASURED_ENCODINGS, RfbRelayRefused
from policy.rules import DisplayRules

BRIDGE_LOG = "desktop_broker.x11.rfb_bridge"
NOTHING_ALLOWED = DisplayRules()
BOTH_WAYS = DisplayRules(clipboard_in=True, clipboard_out=True)
# 32 bits per pixel, depth 24, little-endian, true colour, 255 per channel: what x11vnc announces and noVNC keeps.
PIXEL_FORMAT = struct.pack(">BBBBHHHBBB3x", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)
SERVER_INIT = struct.pack(">HH", 1280, 800) + PIXEL_FORMAT + struct.pack(">I", 9) + b"SOHO seat"
FIRST_REQUEST = first_request(1280, 800)
"""What the gateway asks x11vnc for as soon as it has ServerInit, as noVNC will (`rfb_first_update`)."""
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
FIRST_PICTURE = _update(_rect(1, 1, 0, b"AAAA"))
"""The stand-in's answer to the gateway's first request: one raw pixel."""


async def _run(
    server_says: bytes,
    rules: DisplayRules,
    browser_says: bytes = FIRST_REQUEST,
    server_reads: int = 0,
    before_first_picture: bytes = b"",
) -> tuple[bytes, list[bytes], BaseException | None]:
    """Bridge a browser that says `browser_says` after ClientInit to a stand-in x11vnc, which answers ClientInit with
    ServerInit and, on the gateway's first connection, its first request with `before_first_picture` and
    `FIRST_PICTURE`; then it reads `server_reads` bytes more, says `server_says` and hangs up, and the browser leaves
    soon after. A connection the gateway closes first is left as it is. Returns (what the browser got, what each
    connection got after ClientInit, the error)."""
    to_browser: list[bytes] = []
    connections: list[bytearray] = []
    hung_up = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got = bytearray()
        connections.append(got)
        assert await reader.readexactly(1) == b"\x01", "the gateway's ClientInit shares the seat"
        writer.write(SERVER_INIT)
        if len(connections) == 1:  # the gateway's own connection, with the first picture asked for
            got.extend(await reader.readexactly(len(FIRST_REQUEST)))
            writer.write(before_first_picture + FIRST_PICTURE)
            await writer.drain()
        wanted = len(got) + server_reads
        with contextlib.suppress(TimeoutError):  # a dropped message never comes: wait a while for it all the same
            async with asyncio.timeout(2):
                while len(got) < wanted and (chunk := await reader.read(1024)):
                    got.extend(chunk)
        if reader.at_eof():
            return
        writer.write(server_says)
        await writer.drain()
        writer.close()
        hung_up.set()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    browser_messages = [browser_says] if browser_says else []

    async def receive() -> bytes | None:
        if browser_messages:
            return browser_messages.pop()
        await hung_up.wait()  # a browser that says nothing more, and leaves once the seat is gone
        await asyncio.sleep(0.3)
        return None

    async def send(data: bytes) -> None:
        to_browser.append(data)

    async def greeting(server_init: bytes) -> None:
        await send(server_init)

    async def connect(ask_first_update: bool) -> SeatConnection:
        return await start_viewing(*await asyncio.open_connection("127.0.0.1", port), ask_first_update)

    error: BaseException | None = None
    async with server:
        seat = await connect(True)
        try:
            await asyncio.wait_for(
                bridge_websocket_to_rfb(receive, send, seat, rules, greeting, partial(connect, False)), 8
            )
        except (RfbRelayRefused, EOFError) as raised:
            error = raised
    return b"".join(to_browser), [bytes(got) for got in connections], error


def test_a_browser_asking_as_novnc_does_gets_the_picture_the_gateway_asked_for_and_x11vnc_hears_it_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger=BRIDGE_LOG):
        got, connections, error = asyncio.run(_run(b"", NOTHING_ALLOWED, server_reads=1))
    assert error is None
    assert not [record for record in caplog.records if record.name == BRIDGE_LOG]
    assert connections == [FIRST_REQUEST], "the browser's request, the same as the gateway's, must go no further"
    assert got == SERVER_INIT + FIRST_PICTURE


def test_the_first_picture_and_what_follows_wait_until_the_browser_asks() -> None:
    got, _, error = asyncio.run(_run(_plain_cut_text(b"allowed, but after the picture"), BOTH_WAYS, browser_says=b""))
    assert error is None
    assert got == SERVER_INIT


def test_a_browser_asking_otherwise_gets_its_own_picture_on_a_connection_of_its_own(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """In its own 16-bit pixel format; the gateway's first connection, and what its zlib streams saw, are left."""
    sixteen_bits = struct.pack(">BBBBHHHBBB3x", 16, 16, 0, 1, 31, 63, 31, 11, 5, 0)
    says = (
        b"\x00\x00\x00\x00"
        + sixteen_bits
        + struct.pack(">BxHi", 2, 1, 0)
        + struct.pack(">BBHHHH", 3, 0, 0, 0, 1280, 800)
    )
    picture = _update(_rect(2, 1, 0, b"\x12\x34\x56\x78"))  # raw: 2 pixels of 2 bytes
    bell = b"\x02"
    with caplog.at_level(logging.INFO, logger=BRIDGE_LOG):
        got, connections, error = asyncio.run(_run(picture + bell, NOTHING_ALLOWED, says, server_reads=len(says)))
    assert error is None
    assert "not noVNC 1.3's" in caplog.text, "the log must say why the first picture was not the gateway's"
    assert connections == [FIRST_REQUEST, says]
    assert got == SERVER_INIT + picture + bell


async def _left_unread(selection: int) -> int:
    """Bytes of a `selection`-byte cut text, sent before the first picture to a browser that never asks, that the
    gateway left in the stand-in x11vnc's socket after 2 s."""
    unread: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(1)
        writer.write(SERVER_INIT)
        await reader.readexactly(len(FIRST_REQUEST))
        writer.write(_plain_cut_text(bytes(selection)) + FIRST_PICTURE)
        await asyncio.sleep(2)
        unread.set_result(writer.transport.get_write_buffer_size())
        writer.close()

    async def receive() -> bytes | None:
        await asyncio.sleep(30)  # a browser that never asks
        return None

    async def send(data: bytes) -> None:
        return None

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    async def connect(ask_first_update: bool) -> SeatConnection:
        return await start_viewing(*await asyncio.open_connection("127.0.0.1", port), ask_first_update)

    async with server:
        bridge = asyncio.create_task(
            bridge_websocket_to_rfb(receive, send, await connect(True), BOTH_WAYS, send, partial(connect, False))
        )
        left = await unread
        bridge.cancel()
        with contextlib.suppress(asyncio.CancelledError, EOFError, RfbRelayRefused):
            await bridge
    return left


def test_what_the_gateway_holds_before_the_browser_asks_is_bounded() -> None:
    """x11vnc, or an app in its place (F5), sends a huge selection before the first picture while the browser has not
    asked yet: the relay holds at most HOLD_LIMIT and reads no more, so the rest waits in the seat's socket (before,
    all of it was read into the gateway's memory, for as long as the browser did not ask)."""
    selection = 16 * HOLD_LIMIT
    assert asyncio.run(_left_unread(selection)) > selection // 2  # HOLD_LIMIT held, a few MB in the kernel's buffers


def test_plain_cut_text_from_the_seat_is_dropped_and_everything_around_it_arrives_byte_for_byte() -> None:
    bell = b"\x02"
    got, _, error = asyncio.run(
        _run(EVERY_ENCODING + _plain_cut_text(b"customer-id-4711") + bell + EVERY_ENCODING, NOTHING_ALLOWED)
    )
    assert error is None
    assert got == SERVER_INIT + FIRST_PICTURE + EVERY_ENCODING + bell + EVERY_ENCODING


def test_plain_cut_text_from_the_seat_arrives_where_clipboard_out_is_allowed() -> None:
    says = EVERY_ENCODING + _plain_cut_text(b"customer-id-4712")
    got, _, error = asyncio.run(_run(says, DisplayRules(clipboard_out=True)))
    assert error is None
    assert got == SERVER_INIT + FIRST_PICTURE + says


def test_extended_clipboard_capabilities_cross_but_its_content_does_not() -> None:
    caps = _extended_cut_text(3, CAPS | TEXT, struct.pack(">I", 1 << 20))
    provide = _extended_cut_text(3, PROVIDE | TEXT, b"zlib-compressed customer data")
    got, _, error = asyncio.run(_run(b"", NOTHING_ALLOWED, before_first_picture=caps + provide))
    assert error is None
    assert got == SERVER_INIT + caps + FIRST_PICTURE, "x11vnc's capabilities come before the first picture, with it"


def test_a_browser_asking_otherwise_gets_nothing_of_what_the_gateways_request_brought() -> None:
    caps = _extended_cut_text(3, CAPS | TEXT, struct.pack(">I", 1 << 20))
    says = struct.pack(">BxHi", 2, 1, 0) + struct.pack(">BBHHHH", 3, 0, 0, 0, 1280, 800)
    got, _, error = asyncio.run(_run(caps, NOTHING_ALLOWED, says, server_reads=len(says), before_first_picture=caps))
    assert error is None
    assert got == SERVER_INIT + caps, "only the browser's own connection's capabilities, once"


def test_a_message_the_relay_cannot_measure_ends_the_connection() -> None:
    got, _, error = asyncio.run(_run(b"\x96" + _plain_cut_text(b"behind an unknown type"), BOTH_WAYS))
    assert isinstance(error, RfbRelayRefused)
    assert b"unknown type" not in got


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
    says = set_encodings + paste + key
    got, connections, error = asyncio.run(_run(b"", NOTHING_ALLOWED, says, server_reads=12 + len(key)))
    assert error is None
    assert connections == [FIRST_REQUEST, struct.pack(">BxH2i", 2, 2, tight, raw) + key]
    assert got == SERVER_INIT, "the picture the gateway asked for is not what this browser asked for"
    assert {tight, raw} <= MEASURED_ENCODINGS


def test_the_browser_may_not_change_the_pixel_format_once_it_asked_for_an_update() -> None:
    """Updates already on their way would be measured in the wrong format."""
    request = struct.pack(">BBHHHH", 3, 0, 0, 0, 1280, 800)
    set_pixel_format = b"\x00\x00\x00\x00" + PIXEL_FORMAT
    _, connections, error = asyncio.run(_run(b"", NOTHING_ALLOWED, request + set_pixel_format, server_reads=10 + 20))
    assert isinstance(error, RfbRelayRefused)
    assert connections == [FIRST_REQUEST, request]


@pytest.mark.parametrize("rules", [NOTHING_ALLOWED, DisplayRules(clipboard_in=True)])
def test_a_paste_crosses_only_where_clipboard_in_is_allowed(rules: DisplayRules) -> None:
    paste = struct.pack(">B3xi", 6, 10) + b"home-note!"
    _, connections, error = asyncio.run(_run(b"", rules, paste, server_reads=len(paste)))
    assert error is None
    assert (paste in connections[-1]) is rules.clipboard_in
