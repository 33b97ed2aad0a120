"""Seat connections prepared at launch, against a real seat's x11vnc: past ServerInit with the first picture asked
for when taken, closed when not; a warm seat's standby connection handed over unless its other end closed."""

import asyncio
import socket
import struct
import time
from collections.abc import Iterator

import pytest

from desktop_broker.x11 import open_authenticated
from desktop_broker.x11.rfb_first_update import SeatConnection
from gateway.seats.prepared_rfb import PreparedSeatConnections
from tests.desktop_broker.x11_fixtures import RunningSeat, running_seat

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def seat() -> Iterator[RunningSeat]:
    with running_seat() as running:
        yield running


async def _first_picture(opened: SeatConnection) -> bytes:
    """The desktop name from the connection's ServerInit, once x11vnc's answer to the first request is there (its
    clipboard capabilities may come first)."""
    kind = await asyncio.wait_for(opened.reader.readexactly(1), 5)
    while kind == b"\x03":  # ServerCutText: the Extended Clipboard's capabilities
        length = struct.unpack(">3xi", await opened.reader.readexactly(7))[0]
        await opened.reader.readexactly(abs(length))
        kind = await asyncio.wait_for(opened.reader.readexactly(1), 5)
    assert kind == b"\x00", "x11vnc must answer the first request with a FramebufferUpdate"
    opened.writer.close()
    return opened.server_init[24:]


async def _server_name_after_client_init(prepared: PreparedSeatConnections, lease: str) -> bytes | None:
    """Take the lease's connection: the desktop name, once the first picture arrived on it."""
    opened = await prepared.take(lease)
    return None if opened is None else await _first_picture(opened)


def test_a_prepared_connection_is_authenticated_and_one_not_taken_is_closed(seat: RunningSeat) -> None:
    address, password = seat.seat.rfb_address, seat.passwords.full_access

    async def scenario() -> tuple[bytes | None, bytes | None, bytes | None, bytes | None]:
        prepared = PreparedSeatConnections()
        prepared.prepare("taken", address, password, lifetime=10)
        taken = await _server_name_after_client_init(prepared, "taken")
        prepared.prepare("late", address, password, lifetime=0.3)
        await asyncio.sleep(0.6)
        late = await _server_name_after_client_init(prepared, "late")
        prepared.prepare("wrong", address, "wrong-pw", lifetime=10)
        wrong = await _server_name_after_client_init(prepared, "wrong")
        never = await _server_name_after_client_init(prepared, "never-prepared")
        return taken, late, wrong, never

    taken, late, wrong, never = asyncio.run(scenario())
    assert taken == b"SOHO seat", "the prepared connection must stand past ServerInit, its first picture asked for"
    assert late is None, "a connection nobody took within the token's lifetime must be gone"
    assert wrong is None, "a preparation x11vnc refused must not be handed out"
    assert never is None


def test_a_standby_connection_is_handed_over_as_it_is_and_one_x11vnc_closed_is_not(seat: RunningSeat) -> None:
    address, password = seat.seat.rfb_address, seat.passwords.full_access
    standby = open_authenticated(address, password)
    held_at = standby.getsockname()
    time.sleep(1)  # a warm seat's connection waits; x11vnc keeps it
    gone, peer = socket.socketpair()
    peer.close()

    async def scenario() -> tuple[object, bytes | None, bytes | None]:
        prepared = PreparedSeatConnections()
        prepared.prepare("warm", address, password, lifetime=10, standby=standby)
        opened = await prepared.take("warm")
        assert opened is not None
        taken_at = opened.writer.get_extra_info("sockname")
        name = await _first_picture(opened)
        prepared.prepare("closed", address, password, lifetime=10, standby=gone)
        closed = await _server_name_after_client_init(prepared, "closed")
        return taken_at, name, closed

    taken_at, name, closed = asyncio.run(scenario())
    assert taken_at == held_at, "the launch must use the seat's standby connection, not open another"
    assert name == b"SOHO seat", "the standby connection must go on from ClientInit to the first picture"
    assert closed is None, "a standby connection whose other end closed must not be handed out"
