"""The browser side of a seat's pixels: accept the websocket, then bridge it to x11vnc, authenticating on the
browser's behalf so noVNC never learns a VNC password.

The agent's interactive stream and a supervisor's view-only stream start the same way; they differ only in the
password handed in (full access or view-only) and in what watches the stream while it runs.
"""

from functools import partial

from fastapi import WebSocket, WebSocketDisconnect

from desktop_broker.rfb_auth import RfbAuthFailed, greet_browser, open_seat_connection
from desktop_broker.x11 import RfbAddress, bridge_websocket_to_rfb
from desktop_broker.x11.rfb_first_update import SeatConnection
from desktop_broker.x11.rfb_relay import BufferedReceive, RfbRelayRefused
from policy.rules import DisplayRules

STREAM_ENDED = (RfbAuthFailed, RfbRelayRefused, EOFError, OSError, RuntimeError, WebSocketDisconnect)
"""How a pixel stream ends without it being the gateway's fault: a browser or seat that went away, or one that sent
what the relay cannot measure."""


async def accept_browser(websocket: WebSocket) -> BufferedReceive:
    """Accept the websocket (noVNC asks for the "binary" subprotocol) and read the browser's bytes from it."""
    offered = websocket.scope.get("subprotocols") or []
    await websocket.accept(subprotocol="binary" if "binary" in offered else None)

    async def receive() -> bytes | None:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return None
        return message.get("bytes") or (message.get("text") or "").encode()

    return BufferedReceive(receive)


async def bridge_to_seat(
    websocket: WebSocket,
    browser: BufferedReceive,
    address: RfbAddress,
    password: str,
    rules: DisplayRules,
    opened: SeatConnection | None = None,
) -> None:
    """Authenticate to the seat's x11vnc with ``password`` (unless ``opened`` is a connection made ready already,
    `prepared_rfb`) and relay frames both ways until either side leaves; cut text crosses only as ``rules`` allow."""
    seat = opened or await open_seat_connection(address, password)
    send = websocket.send_bytes
    reopen = partial(open_seat_connection, address, password, ask_first_update=False)
    await bridge_websocket_to_rfb(browser, send, seat, rules, greet_browser(browser, send), reopen)
