"""Why a launch or a seat connection is refused, in words the person can act on."""

from gateway.errors import Conflict, GatewayError, NotFound


class AppNotPublished(GatewayError):
    status_code = 403
    reason = "seat.app_not_published"


class NoSeatFree(GatewayError):
    """The pool's `SeatUnavailable`, as the gateway reports it (the node is at its cap, or seats are off)."""

    status_code = 503
    reason = "seat.unavailable"


class LaunchRefused(GatewayError):
    """A launch token that is unknown, altered, used, expired, or presented by someone else."""

    status_code = 403
    reason = "seat.launch_refused"


class SeatEndedByLimit(Conflict):
    """The seat page asked to reconnect to a seat that policy's idle timeout or maximum length ended: a new seat
    takes the person's own click in the workspace, or an open page would undo the limit."""

    reason = "seat.ended_by_limit"


class GuacamoleUnavailable(GatewayError):
    """A Guacamole app cannot be launched: the backend is not configured, or policy's parameters are unsafe."""

    status_code = 503
    reason = "seat.guacamole_unavailable"


class PlaybackRefused(NotFound):
    """Unknown, out of scope, or not this agent's sealed recording; already audited."""

    reason = "recording.not_found"
