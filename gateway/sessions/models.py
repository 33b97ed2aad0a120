"""Home sessions, login attempts and throttle counters, second-factor secrets and their enrolment codes.

Everything that belongs to a person is keyed by ``person_id``: the directory's own stable id of the entry (AD
``objectGUID``, OpenLDAP ``entryUUID``, ``builtin:<key>``), never the name as typed. Rows from before migration 0008
carry ``legacy:<name as typed>`` until the person's next sign-in adopts them (``sessions/adoption.py``).
"""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, DateTime, Index, Text, text
from sqlmodel import Field, SQLModel


class SessionState(StrEnum):
    PENDING_SECOND_FACTOR = "pending_second_factor"
    """Password (and certificate) accepted; the TOTP step is still owed. Grants nothing but that step."""
    ACTIVE = "active"
    ENDING = "ending"
    """Ended with its reason (audited), while its children close: tunnel lease, seat lease, voice leg. Grants
    nothing; nothing that looks for live sessions counts it. The ``sessions.endings`` worker marks it ended."""
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
    SECOND_FACTOR_REQUIRED = "second_factor_required"
    """Signed in without the second factor, which the policy in force now asks of the person's groups."""
    HR_SUSPENDED = "hr_suspended"
    SECOND_FACTOR_ABANDONED = "second_factor_abandoned"
    REPLACED = "replaced_by_new_login"
    NODE_LOST = "node_lost"
    """The gateway node holding the session's seat or tunnel stopped beating; a surviving node ended it."""


class HomeSession(SQLModel, table=True):
    """One person's login: who, with which certificate, from where, since when, and its state.

    The cookie holds a random token; only its SHA-256 is stored, so a database reader cannot take over a session.
    """

    __tablename__ = "home_session"
    __table_args__ = (
        # The take-over's "this person's live sessions" at every sign-in: the person's rows in that state only, not
        # every session they ever had (0.69 → 0.06 ms at 1,300 of them on PostgreSQL).
        Index("ix_home_session_person_id_state", "person_id", "state"),
        # The VPN's full pass looks for active keyed sessions of its node with no tunnel lease: answered from this
        # index alone, not from every active session's row (3.6 → 1.6 ms at 10,000 on SQLite; migration 0027).
        Index(
            "ix_home_session_keyed_state_node",
            "state",
            "node",
            "id",
            sqlite_where=text("wireguard_key IS NOT NULL"),
            postgresql_where=text("wireguard_key IS NOT NULL"),
        ),
    )

    id: str = Field(primary_key=True, max_length=32)
    token_sha256: str = Field(max_length=64, unique=True, index=True)
    csrf_token: str = Field(max_length=64)
    state: SessionState = Field(max_length=32, index=True)
    person_id: str = Field(max_length=255, index=True)
    """The directory's stable id of the person: the one-live-session rule, suspensions and TOTP go by it."""
    login: str = Field(max_length=255, index=True)
    """The account name as the directory spells it (sAMAccountName, uid, built-in key): shown, never trusted."""
    user_dn: str = Field(max_length=1024)
    upn: str | None = Field(default=None, max_length=255)
    display_name: str | None = Field(default=None, max_length=255)
    roles: str = Field(default="", max_length=255)
    """Comma-separated gateway roles granted at login (agent, supervisor, security_admin, hr)."""
    groups: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    """JSON list of the directory group names at login, for display (team names on the wall)."""
    policy_groups: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    """JSON list of the group identifiers at login (DNs, AD SIDs), what the policy is evaluated with."""
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
    """Failed logins, by account name and by source address: the record the supervision alert rules read."""

    __tablename__ = "login_attempt"

    id: int | None = Field(default=None, primary_key=True)
    login: str = Field(max_length=255, index=True)
    source_ip: str = Field(max_length=64, index=True)
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, index=True))
    reason: str = Field(max_length=64)


class LoginThrottle(SQLModel, table=True):
    """Attempts reserved in the current window for one key (a person, an unknown name, a source address).

    An attempt is reserved by one conditional UPDATE (``attempts < limit``) committed before the directory is
    asked: the row lock (PostgreSQL) or the write lock (SQLite) makes concurrent reservations take turns, so at
    most ``limit`` guesses per window reach the directory, whatever the concurrency and however many nodes.
    """

    __tablename__ = "login_throttle"

    key: str = Field(primary_key=True, max_length=320)
    window_started_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, index=True))
    attempts: int = 0


class TotpSecret(SQLModel, table=True):
    """A person's TOTP secret; ``confirmed_at`` is set once they proved their authenticator app has it."""

    __tablename__ = "person_totp"

    person_id: str = Field(primary_key=True, max_length=255)
    login: str = Field(max_length=255)
    """The account name, as the label in the authenticator app."""
    secret: str = Field(max_length=64)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    confirmed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    last_used_step: int = 0
    """The last TOTP time step accepted: a code is never accepted twice (RFC 6238 §5.2)."""
    enrolling_session: str | None = Field(default=None, max_length=32)
    """The session an unconfirmed secret was made for, the only one shown it and able to confirm it (a privileged
    person's: the session that redeemed the enrolment code)."""


class TotpRecoveryCode(SQLModel, table=True):
    """One of a person's one-time recovery codes, accepted instead of a TOTP code (a lost or reset phone).

    Made when a second factor is enrolled and shown once; only the SHA-256 is stored (the code is random, 60 bits,
    and the sign-in throttle bounds guesses, so no slow hash is needed). A new enrolment replaces them all.
    """

    __tablename__ = "person_totp_recovery_code"

    id: int | None = Field(default=None, primary_key=True)
    person_id: str = Field(max_length=255, index=True)
    code_sha256: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    used_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class TotpEnrolmentCode(SQLModel, table=True):
    """A one-time code that lets a privileged person enrol (or re-enrol after a reset) a second factor.

    Issued by another security admin or by ``sohogw`` on the host; only its SHA-256 is stored (the code is random,
    80 bits, so no slow hash is needed); it expires and is used at most once.
    """

    __tablename__ = "totp_enrolment_code"

    id: int | None = Field(default=None, primary_key=True)
    code_sha256: str = Field(max_length=64, unique=True)
    person_id: str = Field(max_length=255, index=True)
    login: str = Field(max_length=255)
    issued_by: str = Field(max_length=255)
    issued_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    used_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    used_by_session: str | None = Field(default=None, max_length=32)
