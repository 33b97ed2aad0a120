"""The gateway answers x11vnc's VNC authentication itself and offers the browser "no authentication".

Why: a password that reaches noVNC reaches the home PC (its memory, a browser extension, a page
script); the seat's one-time VNC password would then be a second key to the seat, usable from any
local process on the gateway host. Here the browser only ever holds the one-time launch token, which
the broker spends before this runs. RFB 3.8 (RFC 6143 §7.1-7.2): after both sides agree on the
version, the seat is authenticated on the gateway's own connection, then the browser is told that
security type 1 (None) is the only one and that it succeeded; from ClientInit on, messages are relayed
(`desktop_broker.x11.rfb_relay`).
"""

import asyncio
import struct

from desktop_broker.x11.rfb_bridge import Handshake
from desktop_broker.x11.rfb_probe import RFB_VERSION, vnc_auth_response
from desktop_broker.x11.rfb_relay import BufferedReceive, Send

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


def greet_browser(browser: BufferedReceive, send: Send) -> Handshake:
    """The browser's side, for a seat connection already authenticated: RFB 3.8 and security type None."""

    async def handshake(_reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
        await send(RFB_VERSION)
        if await browser.exactly(12) != RFB_VERSION:  # 3.3/3.7 negotiate security differently; noVNC speaks 3.8
            raise RfbAuthFailed("the browser does not speak RFB 3.8")
        await send(bytes([1, _NO_AUTH]))
        if (await browser.exactly(1))[0] != _NO_AUTH:
            raise RfbAuthFailed("the browser chose a security type that was not offered")
        await send(_OK)

    return handshake


def authenticate_for_browser(password: str, browser: BufferedReceive, send: Send) -> Handshake:
    """A handshake for `bridge_websocket_to_rfb`: VNC auth towards the seat, "None" towards the browser."""
    towards_browser = greet_browser(browser, send)

    async def handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await authenticate_to_seat(reader, writer, password)
        await towards_browser(reader, writer)

    return handshake
