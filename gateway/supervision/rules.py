"""The alert rules: each turns the current data into conditions (rule, subject) that should have an open alert.

Thresholds come from ``SupervisionSettings``. Certificate expiry is not polled here: the PKI's expiry job calls
the hook in ``alerts.py``.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, func, select

from gateway.sessions.models import LoginAttempt
from gateway.supervision.settings import SupervisionSettings
from gateway.supervision.view import SeatRow

BREAK_TOO_LONG = "break_too_long"
VPN_DOWN = "vpn_down"
IDLE_WHILE_READY = "idle_while_ready"
FAILED_LOGINS = "failed_logins"
CERT_EXPIRING = "cert_expiring"
RECORDING_STORAGE = "recording_storage"
"""Raised by the seats when a node refuses new screen recordings for lack of room (`alerts.RecordingStorageAlarm`)."""
POLLED_RULES = (BREAK_TOO_LONG, VPN_DOWN, IDLE_WHILE_READY, FAILED_LOGINS)


@dataclass(frozen=True)
class Condition:
    rule: str
    subject: str
    login: str | None
    message: str

    @property
    def key(self) -> str:
        return f"{self.rule}:{self.subject}"


def _minutes(since: str | None, now: datetime) -> float:
    return 0.0 if since is None else (now - datetime.fromisoformat(since)).total_seconds() / 60


def seat_conditions(rows: list[SeatRow], now: datetime, settings: SupervisionSettings) -> list[Condition]:
    found = []
    for row in rows:
        if row.break_too_long:
            minutes = _minutes(row.state_since, now)
            message = f"{row.name} ({row.login}) has been on a {row.reason} break for {minutes:.0f} min"
            found.append(Condition(BREAK_TOO_LONG, row.session_id, row.login, message))
        if row.link == "down":
            message = f"{row.name} ({row.login}) is logged in but their VPN tunnel is down"
            found.append(Condition(VPN_DOWN, row.session_id, row.login, message))
        idle = _minutes(row.idle_since, now)
        if row.state == "ready" and row.idle_since and idle > settings.ready_idle_minutes:
            message = f"{row.name} ({row.login}) is ready but their seat has been idle for {idle:.0f} min"
            found.append(Condition(IDLE_WHILE_READY, row.session_id, row.login, message))
    return found


def failed_login_conditions(db: Session, now: datetime, settings: SupervisionSettings) -> list[Condition]:
    since = now - timedelta(minutes=settings.failed_logins_window_minutes)
    counts = db.exec(
        select(LoginAttempt.login, func.count())
        .where(col(LoginAttempt.at) >= since)
        .group_by(col(LoginAttempt.login))
        .having(func.count() >= settings.failed_logins)
    ).all()
    window = f"{settings.failed_logins_window_minutes:g} min"
    return [
        Condition(FAILED_LOGINS, login, login, f"{count} failed logins for {login} within {window}")
        for login, count in counts
    ]
