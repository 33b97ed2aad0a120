"""Why the policies domain refuses or fails, as errors the gateway reports with a reason."""

from gateway.errors import GatewayError


class InvalidPolicy(GatewayError):
    status_code = 422
    reason = "invalid_policy"
