"""What can go wrong with an X11 kiosk seat, in words an operator can act on."""


class SeatError(Exception):
    """Base of every X11 seat failure."""


class SeatStartFailed(SeatError):
    """A seat could not be brought up; the message names the part that failed and its log."""


class SeatUserError(SeatError):
    """The seat's Unix user could not be created, recycled or removed."""


class WatermarkNotDrawn(SeatError):
    """A seat's watermark did not confirm its new label: the seat must not be handed over."""
