"""Seat connections opened and authenticated while the seat page loads, so the websocket finds x11vnc ready.

x11vnc looks for new clients about every 200 ms (docs/seats.md), and the gateway must also pass its VNC
authentication before the browser sees a byte: done only when the websocket arrives, that is most of the time
between the socket opening and the first frame. So the launch (the POST that leases the seat and mints the token)
starts this seat-side half at once, and the token's websocket takes the result. Nothing changes for the gate: the
connection is handed only to the websocket that spent this lease's one-time token, exactly what the broker would
have connected for it, and one not taken within the token's lifetime is closed. A failed or missing preparation
falls back to connecting then (reconnects and supervisors' views always do).

A warm seat's pool already holds such a connection, authenticated while the seat waited (`PooledSeat.standby`):
the launch hands it over, so not even x11vnc's look for a new client is left between the click and the pixels.
Either way the preparation goes on to ServerInit and asks for the first picture as noVNC will
(`rfb_first_update`): x11vnc reads and encodes the screen while the page loads, not after the browser asked.
"""

import asyncio
import logging
import socket

from desktop_broker.rfb_auth import RfbAuthFailed, open_seat_connection
from desktop_broker.x11 import RfbAddress
from desktop_broker.x11.rfb_first_update import SeatConnection, start_viewing

log = logging.getLogger(__name__)


async def _adopt(standby: socket.socket) -> SeatConnection:
    """A warm seat's standby connection taken on to its first picture, unless x11vnc closed it meanwhile: it sends
    nothing before ClientInit, so anything readable now is its end."""
    standby.setblocking(False)
    try:
        ended = standby.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        ended = False
    except OSError:
        ended = True
    if ended:
        standby.close()
        raise EOFError("x11vnc closed the standby connection")
    reader, writer = await asyncio.open_connection(sock=standby)
    try:
        return await start_viewing(reader, writer)
    except BaseException:
        writer.close()
        raise


def _close(task: "asyncio.Task[SeatConnection]") -> None:
    """Cancel a preparation, or close the connection it made."""
    if not task.done():
        task.cancel()
    elif not task.cancelled() and task.exception() is None:
        task.result().writer.close()


class PreparedSeatConnections:
    """At most one prepared connection per lease; runs on the event loop (call `prepare` through it)."""

    def __init__(self) -> None:
        self._by_lease: dict[str, asyncio.Task[SeatConnection]] = {}

    def prepare(
        self, lease_id: str, address: RfbAddress, password: str, lifetime: float, standby: socket.socket | None = None
    ) -> None:
        """Start connecting for `lease_id` (replacing an earlier preparation), or take over the seat's `standby`
        connection when it has one; close it after `lifetime` s unused."""
        earlier = self._by_lease.pop(lease_id, None)
        if earlier is not None:
            _close(earlier)
        connecting = _adopt(standby) if standby is not None else open_seat_connection(address, password)
        task = asyncio.get_running_loop().create_task(connecting)
        self._by_lease[lease_id] = task
        asyncio.get_running_loop().call_later(lifetime, self._expire, lease_id, task)

    async def take(self, lease_id: str) -> SeatConnection | None:
        """The lease's connection past ServerInit, or None when none was prepared or preparing it failed."""
        task = self._by_lease.pop(lease_id, None)
        if task is None:
            return None
        try:
            return await task
        except (OSError, EOFError, RfbAuthFailed) as error:  # IncompleteReadError is an EOFError
            log.info("prepared seat connection of lease %s failed (%s): connecting now", lease_id, error)
            return None

    def _expire(self, lease_id: str, task: "asyncio.Task[SeatConnection]") -> None:
        if self._by_lease.get(lease_id) is task:
            del self._by_lease[lease_id]
            _close(task)
