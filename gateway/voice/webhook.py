"""A generic CTI webhook platform: signed JSON both ways (contract in docs/voice.md, "CTI webhook").

Every message carries ``X-SohoGW-Timestamp`` (Unix seconds) and ``X-SohoGW-Signature: sha256=<hex>``, the
HMAC-SHA256 with the shared secret over ``<timestamp>.<raw body>``. A message is refused when the signature is
wrong, the timestamp is outside the window, or its ``event_id`` was already accepted (kept in the database, so a
replay is refused on every node).
"""

import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import delete
from sqlmodel import Session, col

from gateway.voice.errors import PlatformUnavailable, WebhookRefused
from gateway.voice.models import SeenWebhookEvent
from gateway.voice.platform import CustomerCallEvent, CustomerCallKind, EventSink, LegEvent, LegEventKind, LegOrder
from gateway.voice.settings import CtiWebhookSettings

TIMESTAMP_HEADER = "X-SohoGW-Timestamp"
SIGNATURE_HEADER = "X-SohoGW-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signed_headers(secret: str, body: bytes, now: datetime) -> dict[str, str]:
    timestamp = int(now.timestamp())
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
    }


def verify_signed(
    headers: Mapping[str, str], body: bytes, secret: str, window_seconds: int, now: datetime, *, configured_by: str
) -> dict[str, Any]:
    """The JSON object of a message whose signature (with ``secret``) and timestamp hold; ``WebhookRefused``
    otherwise (fails closed). Shared by the CTI webhook and the SMS gateway's inbound webhook."""
    headers = {name.lower(): value for name, value in headers.items()}  # HTTP header names are case-insensitive
    if not secret:
        raise WebhookRefused(f"the webhook has no secret configured ({configured_by})")
    try:
        timestamp = int(headers.get(TIMESTAMP_HEADER.lower(), ""))
    except ValueError:
        raise WebhookRefused(f"missing or malformed {TIMESTAMP_HEADER}") from None
    expected = sign(secret, timestamp, body)
    if not hmac.compare_digest(expected, headers.get(SIGNATURE_HEADER.lower(), "")):
        raise WebhookRefused("bad signature")
    if abs(now.timestamp() - timestamp) > window_seconds:
        raise WebhookRefused("stale timestamp: check the sender's clock")
    try:
        message = json.loads(body)
    except ValueError:
        raise WebhookRefused("the body is not JSON") from None
    if not isinstance(message, dict):
        raise WebhookRefused("the body must be a JSON object")
    return message


def verify(headers: Mapping[str, str], body: bytes, settings: CtiWebhookSettings, now: datetime) -> dict[str, Any]:
    """The JSON of a CTI message whose signature, timestamp and ``event_id`` hold; ``WebhookRefused`` otherwise."""
    secret = settings.secret.get_secret_value()
    message = verify_signed(headers, body, secret, settings.window_seconds, now, configured_by="voice.webhook.secret")
    if not isinstance(message.get("event_id"), str) or not message["event_id"]:
        raise WebhookRefused("the message has no event_id")
    return message


def accept_event(
    db: Session, headers: Mapping[str, str], body: bytes, settings: CtiWebhookSettings, now: datetime
) -> LegEvent | CustomerCallEvent:
    """Verify, refuse a replay, remember the event id, and translate the message into a platform event."""
    message = verify(headers, body, settings, now)
    event_id = message["event_id"][:128]
    if db.get(SeenWebhookEvent, event_id) is not None:
        raise WebhookRefused(f"event {event_id} was already accepted (replay)")
    db.add(SeenWebhookEvent(event_id=event_id, seen_at=now))
    db.flush()
    return _translate(message)


def _translate(message: dict[str, Any]) -> LegEvent | CustomerCallEvent:
    kind = str(message.get("type", ""))
    group, _, name = kind.partition(".")
    try:
        if group == "leg":
            cause = message.get("cause")
            return LegEvent(str(message["dial_id"]), LegEventKind(name), int(cause) if cause is not None else None)
        if group == "call":
            return CustomerCallEvent(str(message["leg_id"]), CustomerCallKind(name), message.get("caller"))
    except (KeyError, ValueError, TypeError):
        pass
    raise WebhookRefused(f"unknown or incomplete event type {kind!r}; see docs/voice.md")


def forget_seen_events(db: Session, now: datetime, settings: CtiWebhookSettings) -> None:
    """Ids older than twice the window can go: their timestamps would be refused anyway."""
    cutoff = now - timedelta(seconds=2 * settings.window_seconds)
    db.execute(delete(SeenWebhookEvent).where(col(SeenWebhookEvent.seen_at) < cutoff))


class CtiWebhookPlatform:
    """Sends agent commands to the platform's webhook; its events come back through the gateway's route."""

    def __init__(self, settings: CtiWebhookSettings, clock: Any) -> None:
        if not settings.url or not settings.secret.get_secret_value():
            raise PlatformUnavailable("the CTI webhook needs voice.webhook.url and voice.webhook.secret")
        self._settings, self._clock = settings, clock
        self._http = httpx.Client(timeout=settings.timeout_seconds)

    def _send(self, kind: str, leg: LegOrder, **extra: Any) -> None:
        now = self._clock()
        message = {
            "event_id": uuid.uuid4().hex,
            "type": kind,
            "timestamp": int(now.timestamp()),
            "leg_id": leg.leg_id,
            "dial_id": leg.dial_id,
            "agent": leg.login,
            **extra,
        }
        body = json.dumps(message).encode()
        headers = signed_headers(self._settings.secret.get_secret_value(), body, now)
        try:
            answer = self._http.post(self._settings.url, content=body, headers=headers)
        except httpx.HTTPError as error:
            raise PlatformUnavailable(f"the CTI webhook {self._settings.url} did not answer ({error!r})") from None
        if not answer.is_success:
            raise PlatformUnavailable(f"the CTI webhook refused {kind}: HTTP {answer.status_code}")

    def originate_callback(self, leg: LegOrder) -> None:
        self._send("agent.login", leg, remote_number=leg.e164)

    def hang_up(self, leg: LegOrder) -> None:
        self._send("agent.logout", leg)

    def set_ready(self, leg: LegOrder, ready: bool) -> None:
        self._send("agent.ready" if ready else "agent.not_ready", leg)

    def live_dials(self) -> set[str] | None:
        return None

    def start(self, sink: EventSink) -> None:
        """Nothing to open: the platform posts its events to ``POST /voice/webhook/events``."""

    def stop(self) -> None:
        self._http.close()
