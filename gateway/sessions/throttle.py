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


def account_key(login: str) -> str:
    """One counter per account however it is typed: ``CORP\\alice``, ``alice@corp.example`` and ``Alice`` are one."""
    return login.rsplit("\\", 1)[-1].split("@", 1)[0].strip().casefold()[:255]


def check(db: Session, login: str, source_ip: str, now: datetime, limits: ThrottleLimits) -> None:
    """Refuse before the directory is even asked, so a guessing attack cannot lock the AD account."""
    since = now - limits.window
    recent = select(func.count()).select_from(LoginAttempt).where(col(LoginAttempt.at) > since)
    if db.exec(recent.where(LoginAttempt.login == account_key(login))).one() >= limits.per_account:
        raise TooManyAttempts(
            f"too many failed sign-ins for this account; wait {int(limits.window.total_seconds() // 60)} minutes"
        )
    if db.exec(recent.where(LoginAttempt.source_ip == source_ip)).one() >= limits.per_source:
        raise TooManyAttempts("too many failed sign-ins from this address; wait a few minutes")


def record_failure(db: Session, login: str, source_ip: str, now: datetime, reason: str) -> None:
    db.add(LoginAttempt(login=account_key(login), source_ip=source_ip, at=now, reason=reason))
    db.flush()


def forget(db: Session, login: str) -> None:
    """A successful login clears the account's failures (not the address's)."""
    db.exec(delete(LoginAttempt).where(col(LoginAttempt.login) == account_key(login)))  # type: ignore[call-overload]


def prune(db: Session, now: datetime, limits: ThrottleLimits) -> None:
    db.exec(delete(LoginAttempt).where(col(LoginAttempt.at) <= now - limits.window))  # type: ignore[call-overload]
