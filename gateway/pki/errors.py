"""Why the pki domain refuses or fails, as errors the gateway reports with a reason."""

from gateway.errors import GatewayError


class CaNotReady(GatewayError):
    status_code = 503
    reason = "ca_not_ready"
