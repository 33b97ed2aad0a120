"""Home sessions, login attempts (for throttling) and second-factor enrolments."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, DateTime, Text
from sqlmodel import Field, SQLModel


class SessionState(StrEnum):
    PENDING_SECOND_FACTOR = "pending_second_factor"
    """Password (and certificate) accepted; the TOTP step is still owed. Grants nothing but that step."""
    ACTIVE = "active"
    ENDED = "ended"


class EndReason(StrEnum):
    """Why a session ended; each is its own audit reason."""

    LOGOUT = "logout"
    IDLE = "idle_timeout"
    MAX_LENGTH = "max_session_length"
    ADMIN = "ended_by_admin"
    CERTIFICATE_REVOKED = "certificate_revoked"
    CERTIFICATE_EXPIRED = "certificate_expired"
    CERTIFICATE_STATUS_UNKNOWN = "certificate_status_unknown"
    ACCOUNT_DISABLED = "account_disabled"
    ACCOUNT_LOCKED = "account_locked"
    ACCOUNT_GONE = "account_not_found"
    ACCOUNT_STATE = "account_state_changed"
    ROLE_REMOVED = "role_removed"
    HR_SUSPENDED = "hr_suspended"
    SECOND_FACTOR_ABANDONED = "second_factor_abandoned"
    REPLACED = "replaced_by_new_login"


class HomeSession(SQLModel, table=True):
    """One person's login: who, with which certificate, from where, since when, and its state.

    The cookie holds a random token; only its SHA-256 is stored, so a database reader cannot take over a session.
    """

    __tablename__ = "home_session"

    id: str = Field(primary_key=True, max_length=32)
    token_sha256: str = Field(max_length=64, unique=True, index=True)
    csrf_token: str = Field(max_length=64)
    state: SessionState = Field(max_length=32, index=True)
    login: str = Field(max_length=255, index=True)
    user_dn: str = Field(max_length=1024)
    upn: str | None = Field(default=None, max_length=255)
    display_name: str | None = Field(default=None, max_length=255)
    roles: str = Field(default="", max_length=255)
    """Comma-separated gateway roles granted at login (agent, supervisor, security_admin, hr)."""
    groups: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    """JSON list of the directory group names at login, for policy evaluation."""
    cert_serial: str | None = Field(default=None, max_length=40)
    cert_issuer: str | None = Field(default=None, max_length=512)
    cert_fingerprint: str | None = Field(default=None, max_length=64)
    cert_not_after: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    wireguard_key: str | None = Field(default=None, max_length=64)
    cert_pem: str | None = Field(default=None, sa_column=Column(Text))
    """The certificate presented at login, re-verified (chain and revocation) by every re-validation."""
    second_factor: bool = False
    source_ip: str = Field(default="", max_length=64)
    user_agent: str = Field(default="", max_length=512)
    node: str = Field(default="", max_length=255)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    last_seen_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    last_checked_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    """When re-validation last confirmed the account and certificate."""
    idle_timeout_seconds: int
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    ended_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    end_reason: EndReason | None = Field(default=None, max_length=40)
    ended_by: str | None = Field(default=None, max_length=255)

    @property
    def role_set(self) -> frozenset[str]:
        return frozenset(r for r in self.roles.split(",") if r)


class LoginAttempt(SQLModel, table=True):
    """Failed logins, by account and by source address, for throttling."""

    __tablename__ = "login_attempt"

    id: int | None = Field(default=None, primary_key=True)
    login: str = Field(max_length=255, index=True)
    source_ip: str = Field(max_length=64, index=True)
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, index=True))
    reason: str = Field(max_length=64)


class TotpSecret(SQLModel, table=True):
    """A person's TOTP secret; ``confirmed_at`` is set once they proved their authenticator app has it."""

    __tablename__ = "totp_secret"

    login: str = Field(primary_key=True, max_length=255)
    secret: str = Field(max_length=64)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    confirmed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    last_used_step: int = 0
    """The last TOTP time step accepted: a code is never accepted twice (RFC 6238 §5.2)."""
