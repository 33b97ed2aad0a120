"""HR vetting: applications, stage decisions, evidence, environment-check runs, CSV imports, certificate requests.

Only what the vetting needs about a person is kept: login, display name, UPN and DN (to act in the directory and on
certificates) and the callback number. Evidence lives in the database, so every node serves the same files.
"""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, DateTime, LargeBinary, Text
from sqlmodel import Field, SQLModel


class ApplicationState(StrEnum):
    OPEN = "open"
    """Moving through the stages; ``stage`` is the one awaiting a decision."""
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    SUSPENDED = "suspended"
    """Was approved; HR took the seat away."""


CLOSED_STATES = (ApplicationState.REJECTED, ApplicationState.WITHDRAWN, ApplicationState.SUSPENDED)


class DecisionOutcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    """Passed over by an HR override; the decision carries the override's reason."""


class Application(SQLModel, table=True):
    __tablename__ = "enrollment_application"

    id: int | None = Field(default=None, primary_key=True)
    login: str = Field(max_length=255, index=True)
    display_name: str | None = Field(default=None, max_length=255)
    upn: str | None = Field(default=None, max_length=255)
    user_dn: str | None = Field(default=None, max_length=1024)
    person_id: str | None = Field(default=None, max_length=255, index=True)
    """The directory's stable id of the person (see sessions.models); a suspension ends their sessions by it."""
    callback_e164: str | None = Field(default=None, max_length=20)
    """The callback number HR vetted (E.164); handed to voice on approval."""
    state: ApplicationState = Field(max_length=16, index=True)
    stage: str = Field(max_length=64, index=True)
    started_by: str = Field(max_length=255)
    started_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    approved_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    closed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), index=True))
    closed_by: str | None = Field(default=None, max_length=255)
    close_reason: str | None = Field(default=None, sa_column=Column(Text))
    recheck_due_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), index=True))
    reminded_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    revocation_owed_since: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    """When a withdrawal could not ask the directory for the person's names as they are now: it revoked the
    certificates bound to them, those of the name they applied under and those their sessions signed in with, and the
    membership pass revokes the unbound ones of their current names once the directory answers, then clears it
    (``handoff.finish_owed_revocations``). The retention purge keeps the application while it is set."""


class StageDecision(SQLModel, table=True):
    __tablename__ = "enrollment_decision"

    id: int | None = Field(default=None, primary_key=True)
    application_id: int = Field(foreign_key="enrollment_application.id", index=True)
    stage: str = Field(max_length=64)
    outcome: DecisionOutcome = Field(max_length=16)
    notes: str = Field(default="", sa_column=Column(Text, nullable=False))
    override_reason: str | None = Field(default=None, sa_column=Column(Text))
    decided_by: str = Field(max_length=255)
    decided_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class EvidenceKind(StrEnum):
    FILE = "file"
    ENVIRONMENT_CHECK = "environment_check"


class Evidence(SQLModel, table=True):
    __tablename__ = "enrollment_evidence"

    id: int | None = Field(default=None, primary_key=True)
    application_id: int = Field(foreign_key="enrollment_application.id", index=True)
    stage: str = Field(max_length=64)
    kind: EvidenceKind = Field(max_length=32)
    filename: str = Field(max_length=255)
    content_type: str = Field(max_length=64)
    """Sniffed from the bytes, never the uploader's claim."""
    size: int
    sha256: str = Field(max_length=64)
    content: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    summary: str = Field(default="", max_length=255)
    added_by: str = Field(max_length=255)
    added_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class EnvcheckRun(SQLModel, table=True):
    """What the server itself saw of one environment check: bytes served and received, its own timings."""

    __tablename__ = "enrollment_envcheck_run"

    id: str = Field(primary_key=True, max_length=32)
    application_id: int = Field(foreign_key="enrollment_application.id", index=True)
    login: str = Field(max_length=255)
    started_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    download_bytes: int = 0
    download_seconds: float = 0.0
    upload_bytes: int = 0
    upload_seconds: float = 0.0
    ping_arrivals: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    """JSON list of the server's monotonic arrival times of the round-trip probes, in seconds."""
    submitted_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class ImportRun(SQLModel, table=True):
    """One CSV import: its progress and the per-row problems, kept so HR can reopen the report."""

    __tablename__ = "enrollment_import"

    id: int | None = Field(default=None, primary_key=True)
    started_by: str = Field(max_length=255)
    started_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    finished_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    total_rows: int = 0
    processed_rows: int = 0
    imported: int = 0
    problems: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    """JSON list of {"line": n, "reason": "..."}."""


class CertificateRequestState(StrEnum):
    OPEN = "open"
    ISSUED = "issued"
    CANCELLED = "cancelled"


class CertificateRequest(SQLModel, table=True):
    """An approved agent waits for a certificate; security admins issue it and close the request."""

    __tablename__ = "enrollment_certificate_request"

    id: int | None = Field(default=None, primary_key=True)
    application_id: int | None = Field(default=None, foreign_key="enrollment_application.id", index=True)
    login: str = Field(max_length=255, index=True)
    upn: str | None = Field(default=None, max_length=255)
    state: CertificateRequestState = Field(max_length=16, index=True)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    closed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    closed_by: str | None = Field(default=None, max_length=255)
