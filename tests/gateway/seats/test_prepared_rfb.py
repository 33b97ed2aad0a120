"""Seat connections prepared at launch, against a real seat's x11vnc: authenticated when taken, closed when not;
a warm seat's standby connection handed over unless its other end closed."""

import asyncio
import socket
import struct
import time
from collections.abc import Iterator

import pytest

from desktop_broker.x11 import open_authenticated
from gateway.seats.prepared_rfb import PreparedSeatConnections
from tests.desktop_broker.x11_fixtures import RunningSeat, running_seat

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def seat() -> Iterator[RunningSeat]:
    with running_seat() as running:
        yield running


async def _server_name_after_client_init(prepared: PreparedSeatConnections, lease: str) -> bytes | None:
    """Take the lease's connection and speak on from ClientInit, as the browser's bytes would: the desktop name."""
    opened = await prepared.take(lease)
    if opened is None:
        return None
    reader, writer = opened
    writer.write(b"\x01")  # ClientInit, shared
    header = await asyncio.wait_for(reader.readexactly(24), 5)
    name = await reader.readexactly(struct.unpack(">I", header[20:24])[0])
    writer.close()
    return name


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
    assert taken == b"SOHO seat", "the prepared connection must stand after VNC authentication, before ClientInit"
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
        taken_at = opened[1].get_extra_info("sockname")
        opened[1].write(b"\x01")  # ClientInit, shared
        header = await asyncio.wait_for(opened[0].readexactly(24), 5)
        name = await opened[0].readexactly(struct.unpack(">I", header[20:24])[0])
        opened[1].close()
        prepared.prepare("closed", address, password, lifetime=10, standby=gone)
        closed = await _server_name_after_client_init(prepared, "closed")
        return taken_at, name, closed

    taken_at, name, closed = asyncio.run(scenario())
    assert taken_at == held_at, "the launch must use the seat's standby connection, not open another"
    assert name == b"SOHO seat", "the standby connection must go on from ClientInit"
    assert closed is None, "a standby connection whose other end closed must not be handed out"
