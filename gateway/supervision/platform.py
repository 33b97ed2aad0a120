"""The contact-center platform's work-state API: signed JSON, as the CTI webhook (docs/supervision.md).

``POST /supervision/api/work-state`` with ``X-SohoGW-Timestamp`` (Unix seconds) and ``X-SohoGW-Signature:
sha256=<hex>``, the HMAC-SHA256 with ``supervision.platform_secret`` over ``<timestamp>.<raw body>``; the body is
``{"login": "...", "state": "ready|on_call|wrap_up|break|offline", "reason": "lunch", "at": "<ISO 8601>"}``.
A replayed or late message cannot move an agent back: a change older than the current stretch is refused.
"""

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlmodel import Session

from gateway.clock import as_utc
from gateway.errors import Conflict, NotFound
from gateway.sessions.service import live_sessions
from gateway.supervision.errors import PlatformRefused
from gateway.supervision.models import WorkState
from gateway.supervision.settings import SupervisionSettings
from gateway.supervision.state import current_state, parse_status, set_work_state

TIMESTAMP_HEADER = "X-SohoGW-Timestamp"
SIGNATURE_HEADER = "X-SohoGW-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verify(headers: Mapping[str, str], body: bytes, settings: SupervisionSettings, now: datetime) -> dict[str, Any]:
    """The message's JSON when its signature and timestamp hold; ``PlatformRefused`` otherwise (fails closed)."""
    if settings.platform_secret is None:
        raise PlatformRefused("the work-state API is off: no supervision.platform_secret is configured")
    lowered = {name.lower(): value for name, value in headers.items()}
    try:
        timestamp = int(lowered.get(TIMESTAMP_HEADER.lower(), ""))
    except ValueError:
        raise PlatformRefused(f"missing or malformed {TIMESTAMP_HEADER}") from None
    if abs(now.timestamp() - timestamp) > settings.platform_max_skew_seconds:
        raise PlatformRefused("the message's timestamp is outside the allowed window; check the platform's clock")
    expected = sign(settings.platform_secret.get_secret_value(), timestamp, body)
    if not hmac.compare_digest(expected, lowered.get(SIGNATURE_HEADER.lower(), "")):
        raise PlatformRefused("the signature does not match the body; check the shared secret")
    try:
        message = json.loads(body)
    except ValueError:
        raise PlatformRefused("the body is not JSON") from None
    if not isinstance(message, dict):
        raise PlatformRefused("the body must be a JSON object")
    return message


def apply_platform_state(db: Session, message: dict[str, Any], now: datetime) -> WorkState:
    """Set the state of the agent's newest live session, as of the message's ``at`` (default: now)."""
    login = str(message.get("login", ""))
    sessions = live_sessions(db, login=login)
    if not sessions:
        raise NotFound(f"{login!r} has no live session")
    status, reason = parse_status(str(message.get("state", "")), str(message.get("reason", "")))
    at = as_utc(datetime.fromisoformat(message["at"])) if message.get("at") else now
    session = sessions[-1]
    open_row = current_state(db, session.id)
    if open_row is not None and as_utc(open_row.started_at) > at:
        raise Conflict(f"the change at {at.isoformat()} is older than {login}'s current state; ignored")
    return set_work_state(db, session, status, reason, source="platform", now=at)
