"""The gateway's error hierarchy.

Services raise these, never HTTPException; one exception handler renders them with their status and a message a
person can act on.
"""


class GatewayError(Exception):
    """Base of every error a user or operator is meant to read."""

    status_code = 400
    reason = "bad_request"

    def __init__(self, message: str, *, key: str = "", **values: object) -> None:
        super().__init__(message)
        self.message = message
        self.key = key
        """The catalog key (``refused.<key>``) of what people read, filled with ``values``; ``message`` stays the
        operator's and the log's English. Empty: the page falls back to ``reason.<reason>``."""
        self.values = values


class NotFound(GatewayError):
    status_code = 404
    reason = "not_found"


class Conflict(GatewayError):
    status_code = 409
    reason = "conflict"


class Forbidden(GatewayError):
    status_code = 403
    reason = "forbidden"


class Unauthenticated(GatewayError):
    status_code = 401
    reason = "unauthenticated"


class Unavailable(GatewayError):
    """A dependency (directory, display backend, PBX) did not answer."""

    status_code = 503
    reason = "unavailable"


class TooLong(GatewayError):
    """A value longer than the column that keeps it (`gateway.db.fits_column`)."""

    status_code = 422
    reason = "too_long"
