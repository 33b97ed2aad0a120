"""Why the voice domain refuses or fails, as errors the gateway reports with a reason."""

from gateway.errors import Conflict, GatewayError, Unauthenticated, Unavailable


class InboundTextRefused(GatewayError):
    """A signed inbound message without the fields every text has: the SMS gateway is misconfigured."""

    status_code = 422
    reason = "inbound_text_refused"


class WebhookRefused(Unauthenticated):
    reason = "webhook_refused"


class NoCallbackNumber(GatewayError):
    status_code = 422
    reason = "no_callback_number"


class CallbackRateLimited(GatewayError):
    status_code = 429
    reason = "callback_rate_limited"


class CodeRefused(GatewayError):
    status_code = 422
    reason = "code_refused"


class WrongCode(CodeRefused):
    """The counted failed attempt is flushed; the caller must commit it before the error rolls anything back."""


class TooManyCodes(GatewayError):
    """The refusal's audit row is flushed; the caller must commit it before the error rolls anything back."""

    status_code = 429
    reason = "too_many_codes"


class PlatformUnavailable(Unavailable):
    reason = "voice_platform_unavailable"


class ListeningUnsupported(GatewayError):
    status_code = 501
    reason = "voice.listening_unsupported"


class NothingToListenTo(Conflict):
    reason = "voice.no_customer_call"


class NumberRefused(GatewayError):
    """A number the policy refuses; ``reason`` names the case (pages translate by it)."""

    status_code = 422
    reason = "number_refused"

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason
