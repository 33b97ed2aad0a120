"""Brute-force throttling per account and per source address, from the failed-login rows in the database.

Kept in the database (not in memory) so that every gateway node sees the same count.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, delete, func, select

from gateway.errors import GatewayError
from gateway.sessions.models import LoginAttempt


class TooManyAttempts(GatewayError):
    status_code = 429
    reason = "throttled"


@dataclass(frozen=True)
class ThrottleLimits:
    per_account: int = 5
    per_source: int = 20
    window: timedelta = timedelta(minutes=15)


def check(db: Session, login: str, source_ip: str, now: datetime, limits: ThrottleLimits) -> None:
    """Refuse before the directory is even asked, so a guessing attack cannot lock the AD account."""
    since = now - limits.window
    recent = select(func.count()).select_from(LoginAttempt).where(col(LoginAttempt.at) > since)
    if db.exec(recent.where(LoginAttempt.login == login.casefold())).one() >= limits.per_account:
        raise TooManyAttempts(
            f"too many failed sign-ins for this account; wait {int(limits.window.total_seconds() // 60)} minutes"
        )
    if db.exec(recent.where(LoginAttempt.source_ip == source_ip)).one() >= limits.per_source:
        raise TooManyAttempts("too many failed sign-ins from this address; wait a few minutes")


def record_failure(db: Session, login: str, source_ip: str, now: datetime, reason: str) -> None:
    db.add(LoginAttempt(login=login.casefold()[:255], source_ip=source_ip, at=now, reason=reason))
    db.flush()


def forget(db: Session, login: str) -> None:
    """A successful login clears the account's failures (not the address's)."""
    db.exec(delete(LoginAttempt).where(col(LoginAttempt.login) == login.casefold()))  # type: ignore[call-overload]


def prune(db: Session, now: datetime, limits: ThrottleLimits) -> None:
    db.exec(delete(LoginAttempt).where(col(LoginAttempt.at) <= now - limits.window))  # type: ignore[call-overload]
