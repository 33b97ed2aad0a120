"""A generic HTTP SMS-gateway adapter: one JSON POST per message.

The webhook shape (docs/voice.md, "SMS gateway"): ``POST <url>`` with ``Content-Type: application/json`` and the body
``{"<to_field>": "+8613812345678", "<text_field>": "..."}`` plus the configured ``extra`` fields, and
``Authorization: Bearer <token>`` when a token is set. Any 2xx answer means "accepted"; anything else, a timeout or a
refused connection raises ``SmsNotSent`` naming the gateway and the status, never the message text (it may carry a
one-time code).

A sender that may repeat a message (a survey whose first attempt was never confirmed) passes a ``key``, sent as the
``Idempotency-Key`` header (IETF draft-ietf-httpapi-idempotency-key-header): a gateway that honours it delivers a
repeated key once and answers the repeat as it answered the first, or ``409 Conflict`` while the first is still
being processed (``SmsKeyInFlight``: whether the text goes out is not known yet).
"""

from typing import Annotated, Protocol

import httpx
from pydantic import BaseModel, Field, SecretStr

from gateway.errors import Unavailable


class SmsNotSent(Unavailable):
    reason = "sms_not_sent"


class SmsKeyInFlight(SmsNotSent):
    """The gateway is still processing an earlier request with the same idempotency key (HTTP 409)."""

    reason = "sms_key_in_flight"


class SmsSettings(BaseModel):
    """Where text messages go. Without ``url`` no SMS can be sent and features that need one say so."""

    url: str | None = None
    to_field: str = "to"
    text_field: str = "text"
    extra: dict[str, str] = {}
    """Constant fields some gateways need (sender id, template id)."""
    bearer_token: SecretStr | None = None
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 5.0


class SmsSender(Protocol):
    def send(self, to: str, text: str, key: str | None = None) -> None: ...


class HttpSms:
    """Sends each message as one JSON POST to the configured gateway."""

    def __init__(self, settings: SmsSettings) -> None:
        self._settings = settings

    def send(self, to: str, text: str, key: str | None = None) -> None:
        settings = self._settings
        if not settings.url:
            raise SmsNotSent("no SMS gateway is configured (sms.url); ask an administrator to set one")
        headers = {}
        if settings.bearer_token is not None:
            headers["Authorization"] = f"Bearer {settings.bearer_token.get_secret_value()}"
        if key is not None:
            headers["Idempotency-Key"] = key
        body = {**settings.extra, settings.to_field: to, settings.text_field: text}
        try:
            answer = httpx.post(settings.url, json=body, headers=headers, timeout=settings.timeout_seconds)
        except httpx.HTTPError as error:
            raise SmsNotSent(f"the SMS gateway at {settings.url} did not answer ({type(error).__name__})") from None
        if answer.status_code == 409 and key is not None:
            raise SmsKeyInFlight(f"the SMS gateway at {settings.url} is still processing message {key} (HTTP 409)")
        if not answer.is_success:
            raise SmsNotSent(f"the SMS gateway at {settings.url} refused the message (HTTP {answer.status_code})")
