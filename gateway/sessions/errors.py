"""Why the sessions domain refuses or fails, as errors the gateway reports with a reason."""

from collections.abc import Mapping

from gateway.errors import GatewayError, NotFound
from gateway.sessions.models import EndReason


class LoginFailed(GatewayError):
    """A refused login; ``reason`` is the audit reason and the key of the translated message."""

    status_code = 401

    def __init__(
        self, message: str, reason: str, status_code: int = 401, values: Mapping[str, object] | None = None
    ) -> None:
        super().__init__(message)
        self.reason, self.status_code = reason, status_code
        self.values = dict(values or {})
        """What the translated message fills in (a date, an issuer's name)."""


class TooManyAttempts(GatewayError):
    status_code = 429
    reason = "throttled"


class SecondFactorRefused(GatewayError):
    status_code = 401
    reason = "second_factor_refused"


class EnrolmentCodeRequired(GatewayError):
    status_code = 403
    reason = "enrolment_code_required"


class LoginRequired(GatewayError):
    status_code = 401
    reason = "login_required"

    def __init__(self, message: str, ended: EndReason | None = None) -> None:
        super().__init__(message)
        self.ended = ended
        """Why the person's session ended, when it did: the sign-in page says so."""


class CsrfRefused(GatewayError):
    status_code = 403
    reason = "csrf"


class LoginFormOnly(GatewayError):
    status_code = 415
    reason = "login_form_only"


class EnrolmentCodeRefused(GatewayError):
    status_code = 403
    reason = "enrolment_code_refused"


class UnknownAgent(NotFound):
    reason = "supervision.agent_not_found"
