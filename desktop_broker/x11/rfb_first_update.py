"""The seat side of a viewer's connection, past ClientInit, with the first picture already asked for.

Why: after the browser's websocket opened, its first picture waited on two things the gateway can do before: x11vnc's
ServerInit (after ClientInit) and, above all, x11vnc's answer to the first FramebufferUpdateRequest, 5-65 ms after it
(x11vnc reads the whole screen and encodes it; measured in the relay at load 2-5). noVNC 1.3 asks for that first
picture in one fixed way once it has ServerInit (`_negotiateServerInit`: pixel format, encodings, the whole screen),
so the gateway sends that same request itself as soon as it holds the seat's connection — at the launch, while the
page is still travelling — and the relay hands the answer over when the browser's own request arrives and is the
same (`rfb_relay`). A browser that asks otherwise (another viewer, a newer noVNC) gets a connection of its own,
opened without asking (`rfb_bridge`): the answer to the gateway's request cannot just be dropped, since Tight and
ZRLE data go through zlib streams that last the whole connection, and a browser that missed some of it cannot
inflate the rest (seen: noVNC's "zlib inflate failed").

ClientInit's shared flag is the gateway's (1): x11vnc runs `-shared`, which ignores the client's flag anyway.
"""

import asyncio
import struct
from dataclasses import dataclass

_SHARED = b"\x01"
NOVNC_PIXEL_FORMAT = struct.pack(">BBBBHHHBBB3x", 32, 24, 0, 1, 255, 255, 255, 0, 8, 16)
"""noVNC 1.3's `RFB.messages.pixelFormat(sock, 24, true)`: 32 bits, depth 24, little-endian, red in the low byte."""
_EXTENDED_CLIPBOARD = struct.unpack(">i", b"\xc0\xa1\xe5\xce")[0]
NOVNC_ENCODINGS = (1, 7, 2, 0, -32 + 6, -256 + 2, -223, -224, -258, -307, _EXTENDED_CLIPBOARD, -239)
"""noVNC 1.3's `_sendEncodings` at depth 24 with its default quality (6) and compression (2), as the relay passes it
on (`rfb_relay.MEASURED_ENCODINGS`): CopyRect, Tight, RRE, Raw, the two levels, DesktopSize, LastRect, QEMU key
events, DesktopName, Extended Clipboard (0xC0A1E5CE), cursor."""


def first_request(width: int, height: int) -> bytes:
    """What noVNC sends right after ServerInit, as it reaches x11vnc: SetPixelFormat, SetEncodings, and a
    FramebufferUpdateRequest for the whole `width` x `height` screen (not incremental)."""
    encodings = struct.pack(f">BxH{len(NOVNC_ENCODINGS)}i", 2, len(NOVNC_ENCODINGS), *NOVNC_ENCODINGS)
    return b"\0\0\0\0" + NOVNC_PIXEL_FORMAT + encodings + struct.pack(">BBHHHH", 3, 0, 0, 0, width, height)


@dataclass(frozen=True)
class SeatConnection:
    """A viewer's connection to a seat's x11vnc, authenticated, past ServerInit, the first picture asked for."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    server_init: bytes
    """x11vnc's ServerInit, name included, for the browser."""
    asked: bytes
    """The `first_request` already sent, whose answer waits in `reader` for a browser that asks the same; empty when
    nothing was asked."""


async def start_viewing(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ask_first_update: bool = True
) -> SeatConnection:
    """Go on from an authenticated connection: ClientInit, ServerInit, and (`ask_first_update`) noVNC's first
    request sent."""
    writer.write(_SHARED)
    header = await reader.readexactly(24)
    server_init = header + await reader.readexactly(struct.unpack(">I", header[20:24])[0])
    asked = first_request(*struct.unpack(">HH", header[:4])) if ask_first_update else b""
    writer.write(asked)
    await writer.drain()
    return SeatConnection(reader, writer, server_init, asked)
