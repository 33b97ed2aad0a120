"""Bridge one browser websocket to a seat's x11vnc: the gateway calls this after checking the token.

Why no per-seat websockify: the gateway already terminates the browser's TLS and must check the
one-time launch token before any pixel flows (ARCHITECTURE.md, step 5). Bridging in the gateway makes it
the gate by construction, serves noVNC's files from one origin, and saves websockify's ~27 MB per seat.
Framework-neutral: pass the websocket's receive/send coroutines (FastAPI's or the `websockets` library's).
"""

import asyncio
from collections.abc import Awaitable, Callable

from desktop_broker.x11.rfb_relay import BufferedReceive, relay
from desktop_broker.x11.spec import RfbAddress
from policy.rules import DisplayRules

Handshake = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
SeatStreams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def bridge_websocket_to_rfb(
    receive: Callable[[], Awaitable[bytes | None]],
    send: Callable[[bytes], Awaitable[None]],
    address: RfbAddress,
    rules: DisplayRules,
    handshake: Handshake | None = None,
    opened: SeatStreams | None = None,
) -> None:
    """Relay RFB both ways until either side closes (`receive` returns None when the browser left).

    Cut text crosses only in the directions `rules` allow, whatever x11vnc sends (`rfb_relay`). `handshake`, if
    given, runs on the seat's connection first: the gateway uses it to authenticate to x11vnc itself, so the browser
    never learns the seat's VNC password. `opened` is a connection to `address` the caller opened (and
    authenticated) ahead of time; it is used instead of a new one.
    """
    browser = receive if isinstance(receive, BufferedReceive) else BufferedReceive(receive)
    reader, writer = opened or await asyncio.open_connection(address.host, address.port)
    try:
        if handshake is not None:
            await handshake(reader, writer)
        await relay(browser, send, (reader, writer), rules)
    finally:
        writer.close()
