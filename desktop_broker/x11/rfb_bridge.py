"""Bridge one browser websocket to a seat's x11vnc: the gateway calls this after checking the token.

Why no per-seat websockify: the gateway already terminates the browser's TLS and must check the
one-time launch token before any pixel flows (ARCHITECTURE.md, step 5). Bridging in the gateway makes it
the gate by construction, serves noVNC's files from one origin, and saves websockify's ~27 MB per seat.
Framework-neutral: pass the websocket's receive/send coroutines (FastAPI's or the `websockets` library's).
"""

import asyncio
from collections.abc import Awaitable, Callable

from desktop_broker.x11.spec import RfbAddress

_CHUNK = 64 * 1024
Handshake = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
SeatStreams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def bridge_websocket_to_rfb(
    receive: Callable[[], Awaitable[bytes | None]],
    send: Callable[[bytes], Awaitable[None]],
    address: RfbAddress,
    handshake: Handshake | None = None,
    opened: SeatStreams | None = None,
) -> None:
    """Copy bytes both ways until either side closes (`receive` returns None when the browser left).

    `handshake`, if given, runs on the seat's connection before any byte is copied: the gateway uses it
    to authenticate to x11vnc itself, so the browser never learns the seat's VNC password. `opened` is a
    connection to `address` the caller opened (and authenticated) ahead of time; it is used instead of a new one.
    """
    reader, writer = opened or await asyncio.open_connection(address.host, address.port)
    if handshake is not None:
        try:
            await handshake(reader, writer)
        except BaseException:
            writer.close()
            raise

    async def browser_to_seat() -> None:
        while (data := await receive()) is not None:
            writer.write(data)
            await writer.drain()

    async def seat_to_browser() -> None:
        while data := await reader.read(_CHUNK):
            await send(data)

    tasks = [asyncio.create_task(browser_to_seat()), asyncio.create_task(seat_to_browser())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        writer.close()
