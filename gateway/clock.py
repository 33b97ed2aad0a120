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
    """Databases hand back naive datetimes (SQLite always does): they are stored in UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)
