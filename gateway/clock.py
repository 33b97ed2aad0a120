"""The one clock of the gateway.

Every service takes its time from here so that tests can move time instead of sleeping.
"""

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """Aware UTC now; the default clock."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """In UTC: databases hand back naive datetimes (SQLite always does), stored in UTC; PostgreSQL hands back aware ones
    in the session's time zone, which is the server's own unless set, so they are converted (the audit chain hashes
    times as text: a row read back as +05:30 was reported altered)."""
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
