"""Why the vpn domain refuses or fails, as errors the gateway reports with a reason."""

from gateway.errors import GatewayError


class NoTunnel(GatewayError):
    status_code = 409
    reason = "no_tunnel"
