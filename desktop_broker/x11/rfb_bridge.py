"""Bridge one browser websocket to a seat's x11vnc: the gateway calls this after checking the token.

Why no per-seat websockify: the gateway already terminates the browser's TLS and must check the
one-time launch token before any pixel flows (ARCHITECTURE.md, step 5). Bridging in the gateway makes it
the gate by construction, serves noVNC's files from one origin, and saves websockify's ~27 MB per seat.
Framework-neutral: pass the websocket's receive/send coroutines (FastAPI's or the `websockets` library's).
"""

import logging
from collections.abc import Awaitable, Callable

from desktop_broker.x11.rfb_first_update import SeatConnection
from desktop_broker.x11.rfb_relay import BufferedReceive, FirstRequestDiffers, relay
from policy.rules import DisplayRules

log = logging.getLogger(__name__)
Greeting = Callable[[bytes], Awaitable[None]]
"""The browser's side of the handshake up to its ClientInit, given x11vnc's ServerInit to pass on."""
Reopen = Callable[[], Awaitable[SeatConnection]]
"""Another connection to the same seat, past ServerInit, with nothing asked (`open_seat_connection`)."""


async def bridge_websocket_to_rfb(
    receive: Callable[[], Awaitable[bytes | None]],
    send: Callable[[bytes], Awaitable[None]],
    seat: SeatConnection,
    rules: DisplayRules,
    greeting: Greeting,
    reopen: Reopen,
) -> None:
    """Greet the browser, then relay RFB both ways until either side closes (`receive` returns None when the browser
    left); the seat connection is closed at the end.

    `seat` is authenticated by the gateway itself, so the browser never learns the seat's VNC password, and has its
    first picture asked for (`rfb_first_update`). A browser that asks otherwise is relayed on a connection `reopen`
    makes, with nothing asked: the answer to the gateway's request is left unread with the first connection. Cut
    text crosses only in the directions `rules` allow, whatever x11vnc sends (`rfb_relay`).
    """
    browser = receive if isinstance(receive, BufferedReceive) else BufferedReceive(receive)
    try:
        await greeting(seat.server_init)
        try:
            await relay(browser, send, seat, rules)
        except FirstRequestDiffers as differs:
            # Not an error, but this browser's first picture waits for x11vnc: a viewer other than noVNC 1.3 asks.
            log.info("%s: relayed on a connection of its own", differs)
            seat.writer.close()
            seat = await reopen()
            await relay(browser, send, seat, rules)
    finally:
        seat.writer.close()
