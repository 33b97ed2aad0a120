"""Every client of a seat's x11vnc sends its ProtocolVersion first, so x11vnc's libvncserver greets it at once.

The stand-in server below greets the way libvncserver with WebSocket support does (`webSocketsCheck`): it first
waits for the client's opening bytes, and only when none come within its wait does it speak. It records which
happened; a client that waited for the greeting is seen as such, whatever the machine's speed. The real x11vnc
path is covered by test_prepared_rfb.py and the seat tests.
"""

import asyncio
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from desktop_broker.rfb_auth import authenticate_to_seat
from desktop_broker.x11 import RfbAddress, wait_for_first_frame
from desktop_broker.x11.rfb_screen_copy import ScreenCopy

PEEK_SECONDS = 2.0
"""libvncserver waits 100 ms; longer here, so a client that does wait is never mistaken for one that spoke."""
WIDTH, HEIGHT = 4, 2


def _exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _serve_one(listener: socket.socket, opening: list[bytes]) -> None:
    """Peek, greet, accept any VNC password, send ServerInit, answer FramebufferUpdateRequests with raw pixels."""
    conn, _ = listener.accept()
    with conn:
        conn.settimeout(PEEK_SECONDS)
        try:
            opening.append(conn.recv(4, socket.MSG_PEEK))
        except TimeoutError:
            opening.append(b"")
        conn.settimeout(5)
        try:
            conn.sendall(b"RFB 003.008\n")
            _exactly(conn, 12)
            conn.sendall(bytes([1, 2]))  # one security type: VNC authentication
            _exactly(conn, 1)
            conn.sendall(bytes(16))  # the challenge
            _exactly(conn, 16)
            conn.sendall(struct.pack(">I", 0))
            _exactly(conn, 1)  # ClientInit
            pixel_format = struct.pack(">BBBBHHHBBBxxx", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)
            conn.sendall(struct.pack(">HH", WIDTH, HEIGHT) + pixel_format + struct.pack(">I", 4) + b"seat")
            while message := conn.recv(1):
                if message[0] == 0:  # SetPixelFormat
                    _exactly(conn, 19)
                elif message[0] == 2:  # SetEncodings
                    _exactly(conn, 4 * struct.unpack(">xH", _exactly(conn, 3))[0])
                elif message[0] == 3:  # FramebufferUpdateRequest
                    _exactly(conn, 9)
                    rectangle = struct.pack(">HHHHi", 0, 0, WIDTH, HEIGHT, 0) + b"\xff" * (WIDTH * HEIGHT * 4)
                    conn.sendall(struct.pack(">BxH", 0, 1) + rectangle)
        except (EOFError, OSError):
            pass


@contextmanager
def peeking_server() -> Iterator[tuple[RfbAddress, list[bytes]]]:
    """A one-connection server; the list receives what the client had sent before being greeted."""
    listener = socket.create_server(("127.0.0.1", 0))
    opening: list[bytes] = []
    thread = threading.Thread(target=_serve_one, args=(listener, opening), daemon=True)
    thread.start()
    try:
        yield RfbAddress("127.0.0.1", listener.getsockname()[1]), opening
    finally:
        thread.join(timeout=PEEK_SECONDS + 6)
        listener.close()


def _gateway_bridge(address: RfbAddress) -> None:
    async def authenticate() -> None:
        reader, writer = await asyncio.open_connection(address.host, address.port)
        await authenticate_to_seat(reader, writer, "password")
        writer.close()

    asyncio.run(authenticate())


def _screen_wall(address: RfbAddress) -> None:
    copy = ScreenCopy(address, "password")
    assert copy.refresh(wait=5), "the stand-in's first frame must arrive"
    copy.close()


def _readiness_probe(address: RfbAddress) -> None:
    wait_for_first_frame(address, "password", timeout=5)


@pytest.mark.parametrize("client", [_gateway_bridge, _screen_wall, _readiness_probe], ids=lambda c: c.__name__)
def test_a_seat_client_speaks_first_so_x11vnc_greets_without_its_websocket_wait(
    client: Callable[[RfbAddress], None],
) -> None:
    with peeking_server() as (address, opening):
        client(address)
    assert opening == [b"RFB "], "the client waited for the greeting: x11vnc would have held it 100 ms"
