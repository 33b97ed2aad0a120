"""X11 kiosk seats: one published application per virtual display, shown through x11vnc."""

from desktop_broker.x11.errors import SeatError, SeatStartFailed, SeatUserError
from desktop_broker.x11.rfb_bridge import bridge_websocket_to_rfb
from desktop_broker.x11.rfb_probe import open_authenticated, wait_for_first_frame
from desktop_broker.x11.seat import SeatProcess, start_seat
from desktop_broker.x11.spec import Geometry, RfbAddress, SeatPasswords, SeatSpec

__all__ = [
    "Geometry",
    "RfbAddress",
    "SeatError",
    "SeatPasswords",
    "SeatProcess",
    "SeatSpec",
    "SeatStartFailed",
    "SeatUserError",
    "bridge_websocket_to_rfb",
    "open_authenticated",
    "start_seat",
    "wait_for_first_frame",
]
