"""Why the vpn domain refuses or fails, as errors the gateway reports with a reason."""

from gateway.errors import Conflict, GatewayError, Unavailable


class NoTunnel(GatewayError):
    status_code = 409
    reason = "no_tunnel"


class AddressTaken(Conflict):
    """Another transaction took the same address first; retry the transaction."""


class PoolExhausted(Unavailable):
    """No free address is left; widen the pools or shorten the hold-back period."""
