"""The gateway answers x11vnc's VNC authentication itself and offers the browser "no authentication".

Why: a password that reaches noVNC reaches the home PC (its memory, a browser extension, a page
script); the seat's one-time VNC password would then be a second key to the seat, usable from any
local process on the gateway host. Here the browser only ever holds the one-time launch token, which
the broker spends before this runs. RFB 3.8 (RFC 6143 §7.1-7.2): after both sides agree on the
version, the seat is authenticated on the gateway's own connection (and taken on to its first picture,
`desktop_broker.x11.rfb_first_update`), then the browser is told that security type 1 (None) is the only one and
that it succeeded; after its ClientInit, messages are relayed (`desktop_broker.x11.rfb_relay`).
"""

import asyncio
import struct

from desktop_broker.x11.rfb_bridge import Greeting
from desktop_broker.x11.rfb_first_update import SeatConnection, start_viewing
from desktop_broker.x11.rfb_probe import RFB_VERSION, vnc_auth_response
from desktop_broker.x11.rfb_relay import BufferedReceive, Send
from desktop_broker.x11.spec import RfbAddress

_VNC_AUTH = 2
_NO_AUTH = 1
_OK = struct.pack(">I", 0)


class RfbAuthFailed(Exception):
    """The seat or the browser broke the RFB handshake; the seat connection is closed."""


async def authenticate_to_seat(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, password: str) -> None:
    """The seat's side: agree on RFB 3.8 with x11vnc and pass its VNC authentication with `password`.

    Our version goes out first, so x11vnc greets at once instead of after its 100 ms WebSocket peek (`RFB_VERSION`).
    """
    writer.write(RFB_VERSION)
    if not (await reader.readexactly(12)).startswith(b"RFB 003."):
        raise RfbAuthFailed("the seat does not speak RFB")
    types = await reader.readexactly((await reader.readexactly(1))[0])
    if _VNC_AUTH not in types:
        raise RfbAuthFailed(f"the seat offers no VNC authentication (types {list(types)})")
    writer.write(bytes([_VNC_AUTH]))
    writer.write(vnc_auth_response(password, await reader.readexactly(16)))
    await writer.drain()
    if await reader.readexactly(4) != _OK:
        raise RfbAuthFailed("the seat refused the broker's password")


async def open_seat_connection(address: RfbAddress, password: str, ask_first_update: bool = True) -> SeatConnection:
    """Connect to the seat's x11vnc, pass its VNC authentication and go on past ServerInit, asking for the first
    picture as noVNC will unless told not to (`rfb_first_update.start_viewing`)."""
    reader, writer = await asyncio.open_connection(address.host, address.port)
    try:
        await authenticate_to_seat(reader, writer, password)
        return await start_viewing(reader, writer, ask_first_update)
    except BaseException:
        writer.close()
        raise


def greet_browser(browser: BufferedReceive, send: Send) -> Greeting:
    """The browser's side for a seat connection past ServerInit: RFB 3.8, security type None, then x11vnc's
    ServerInit, all sent at once, each in a websocket message of its own; the browser's answers are checked after.

    Why not step by step: each answer of the browser's is a round trip through the page's main thread, which is
    busy while the page starts (5-30 ms each, measured). noVNC 1.3 handles one handshake step per websocket message
    (`_handleMessage` calls `_initMsg` once), so one message per step lets it take them in a row. Nothing is offered
    before it is due: the token was spent before this runs, "None" is the only type offered, and a browser that
    answers otherwise is refused right after."""

    async def greeting(server_init: bytes) -> None:
        for message in (RFB_VERSION, bytes([1, _NO_AUTH]), _OK, server_init):
            await send(message)
        if await browser.exactly(12) != RFB_VERSION:  # 3.3/3.7 negotiate security differently; noVNC speaks 3.8
            raise RfbAuthFailed("the browser does not speak RFB 3.8")
        if (await browser.exactly(1))[0] != _NO_AUTH:
            raise RfbAuthFailed("the browser chose a security type that was not offered")
        await browser.exactly(1)  # ClientInit: x11vnc shares the seat whatever its flag says (`rfb_first_update`)

    return greeting
