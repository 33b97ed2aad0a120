"""The seat lease (a child of the home session) and the one-time launch tokens that open it."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, DateTime
from sqlmodel import Field, SQLModel


class SeatLeaseState(StrEnum):
    ASSIGNED = "assigned"
    """A seat is reserved for the session; no browser is connected (yet, or again within the grace window)."""
    CONNECTED = "connected"
    ENDED = "ended"


class SeatEndReason(StrEnum):
    """Why a seat ended; each is its own audit outcome."""

    SESSION_ENDED = "session_ended"
    IDLE = "idle_timeout"
    MAX_LENGTH = "max_session_length"
    ABANDONED = "not_reconnected"
    CRASHED = "seat_crashed"
    LOST = "seat_lost"
    """The node no longer runs the seat (the gateway restarted): nothing to reconnect to."""


class SeatLease(SQLModel, table=True):
    """One published app on one seat for one home session: desired state the seat reconciler makes true.

    Held by the person of the session (``person_id``, the directory's stable id); ``login`` is shown (watermark,
    seat label)."""

    __tablename__ = "seat_lease"

    id: str = Field(primary_key=True, max_length=32)
    session_id: str = Field(foreign_key="home_session.id", index=True, max_length=32)
    person_id: str = Field(max_length=255, index=True)
    login: str = Field(max_length=255, index=True)
    app_id: str = Field(max_length=128)
    backend: str = Field(max_length=16)
    """x11 or guacamole."""
    node: str = Field(max_length=255, index=True)
    seat_id: str = Field(max_length=64, index=True)
    rfb_address: str | None = Field(default=None, max_length=64)
    """host:port of the seat's x11vnc (X11 only), where the gateway's websocket bridge connects."""
    connection_id: str | None = Field(default=None, max_length=128)
    """guacd's id of the live connection (Guacamole only): what a supervisor joins."""
    state: SeatLeaseState = Field(max_length=16, index=True)
    idle_timeout_seconds: int
    max_session_seconds: int
    started_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    last_activity_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    """Last input seen on the seat, or when the browser connected or left."""
    last_input_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    """The agent's last keyboard or pointer input as guacamole-lite saw it (Guacamole only; None: none since the
    hand-over). Unlike ``last_activity_at`` no connect or disconnect moves it, so a reconnect keeps the idle clock."""
    ended_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    end_reason: SeatEndReason | None = Field(default=None, max_length=32)


class LaunchToken(SQLModel, table=True):
    """One permission to open one seat's websocket once, for one person and session, for ≤ 30 s.

    Only the SHA-256 of the token is stored; ``used_at`` is set by the first redemption attempt, whoever makes it.
    """

    __tablename__ = "launch_token"

    id: str = Field(primary_key=True, max_length=64)
    token_sha256: str = Field(max_length=64, unique=True, index=True)
    backend: str = Field(max_length=16)
    mode: str = Field(default="interactive", max_length=16)
    """interactive (the agent) or view (a supervisor's read-only join)."""
    lease_id: str | None = Field(default=None, foreign_key="seat_lease.id", max_length=32)
    session_id: str | None = Field(default=None, max_length=32)
    login: str = Field(max_length=255)
    seat_id: str = Field(max_length=64)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    used_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    used_by: str | None = Field(default=None, max_length=255)
    connection_id: str | None = Field(default=None, max_length=64)
    """guacd's id of the connection this launch opened, as server.js reported it: set once, never moved."""


class RdpHostCertificate(SQLModel, table=True):
    """The certificate an RDP host showed the first time an app trusting it on first use was launched.

    From then on guacd accepts only this certificate (`cert-fingerprints`); a host showing another is refused,
    audited, until a security administrator removes the row (or pins the new one in policy).
    """

    __tablename__ = "rdp_host_certificate"

    host: str = Field(primary_key=True, max_length=255)
    port: int = Field(primary_key=True)
    fingerprint: str = Field(max_length=110)
    first_seen_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    first_seen_for: str = Field(max_length=255)
    """The login whose launch learned it (the audit row says the same)."""


class RecordingState(StrEnum):
    RECORDING = "recording"
    """guacd is writing the plaintext into the in-progress directory (0700, guacd's user and root only)."""
    CLOSED = "closed"
    """The connection ended; sealed as soon as guacd has closed the file."""
    SEALED = "sealed"
    """Encrypted at rest (AES-256-GCM); the plaintext is gone."""
    FAILED = "failed"
    PURGED = "purged"
    """Deleted by retention or quota; the row (and its audit rows) stay."""


class ScreenRecording(SQLModel, table=True):
    """One recording of one seat's screen, linked to the person, seat, home session and customer call it shows.

    Its audit rows (``recording.start|seal|play|purge``) carry its id as their target."""

    __tablename__ = "screen_recording"

    id: str = Field(primary_key=True, max_length=32)
    person_id: str = Field(max_length=255, index=True)
    login: str = Field(max_length=255)
    session_id: str = Field(foreign_key="home_session.id", index=True, max_length=32)
    lease_id: str = Field(foreign_key="seat_lease.id", index=True, max_length=32)
    seat_id: str = Field(max_length=64)
    app_id: str = Field(max_length=128)
    backend: str = Field(max_length=16)
    node: str = Field(max_length=255, index=True)
    call_event_id: int | None = Field(default=None, index=True)
    """The customer call (its ``voice_call_event`` row of kind ``call.answered``) during which it was recorded."""
    file_name: str = Field(max_length=255)
    """guacd's recording name in the in-progress directory."""
    state: RecordingState = Field(max_length=16, index=True)
    size_bytes: int | None = None
    """The sealed file's size."""
    problem: str | None = Field(default=None, max_length=500)
    started_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, index=True))
    ended_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    sealed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    purged_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
