"""Issued certificates, published CRLs and imported company CAs."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, DateTime, LargeBinary, Text
from sqlmodel import Field, SQLModel


class CertificateKind(StrEnum):
    AGENT = "agent"
    SERVER = "server"


class IssuedCertificate(SQLModel, table=True):
    """Every certificate our issuing CA signed; the source of truth for CRL and OCSP answers."""

    __tablename__ = "issued_certificate"

    id: int | None = Field(default=None, primary_key=True)
    serial: str = Field(max_length=40, unique=True, index=True)
    """Hex, as openssl prints it."""
    kind: CertificateKind = Field(max_length=16)
    subject: str = Field(max_length=512)
    upn: str | None = Field(default=None, max_length=255, index=True)
    person_id: str | None = Field(default=None, max_length=255, index=True)
    """The directory's stable id of the agent it was issued to (``sessions.models``), bound at issuance: taking a
    person's seat away revokes their certificates by it, never by a name someone else may carry by then. NULL for a
    server certificate, and for an agent certificate issued before migration 0025 that no session had signed in
    with (those are still matched by name, ``enrollment.handoff``)."""
    fingerprint_sha256: str = Field(max_length=64, unique=True)
    wireguard_key: str | None = Field(default=None, max_length=64, index=True)
    not_before: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    not_after: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, index=True))
    pem: str = Field(sa_column=Column(Text, nullable=False))
    issued_by: str = Field(max_length=255)
    renewed_from: str | None = Field(default=None, max_length=40)
    revoked_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), index=True))
    revocation_reason: str | None = Field(default=None, max_length=32)


class CrlPublication(SQLModel, table=True):
    """Each CRL we signed; the newest is served. Its number only grows (RFC 5280 §5.2.3)."""

    __tablename__ = "crl_publication"

    number: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    this_update: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    next_update: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    revoked_count: int
    der: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class TrustedAuthority(SQLModel, table=True):
    """A company CA (often AD CS) whose client certificates the portal and VPN accept beside ours."""

    __tablename__ = "trusted_authority"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=255, unique=True)
    subject: str = Field(max_length=512)
    fingerprint_sha256: str = Field(max_length=64, unique=True)
    chain_pem: str = Field(sa_column=Column(Text, nullable=False))
    imported_by: str = Field(max_length=255)
    imported_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
