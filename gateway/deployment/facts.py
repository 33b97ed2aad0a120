"""What a backup promises to bring back, read from the database: the manifest a restore is checked against."""

import hashlib
from dataclasses import asdict, dataclass

from sqlalchemy import text
from sqlmodel import Session, col, func, select

from gateway.audit.models import AuditHead
from gateway.clock import as_utc
from gateway.pki.models import CrlPublication, IssuedCertificate
from gateway.policies.models import PolicyVersion


@dataclass(frozen=True)
class DatabaseFacts:
    revision: str
    certificates: int
    revoked: int
    register_sha256: str
    """Over every issued certificate's serial, fingerprint, revocation time and reason, in serial order."""
    crl_number: int
    crl_sha256: str
    audit_rows: int
    audit_head: str
    policy_versions: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _register_digest(db: Session) -> tuple[str, int, int]:
    digest, certificates, revoked = hashlib.sha256(), 0, 0
    rows = db.exec(
        select(
            IssuedCertificate.serial,
            IssuedCertificate.fingerprint_sha256,
            IssuedCertificate.revoked_at,
            IssuedCertificate.revocation_reason,
        ).order_by(col(IssuedCertificate.serial))
    )
    for serial, fingerprint, revoked_at, reason in rows:
        at = "" if revoked_at is None else as_utc(revoked_at).isoformat()  # SQLite returns it naive, in UTC
        digest.update(f"{serial}|{fingerprint}|{at}|{reason or ''}\n".encode())
        certificates, revoked = certificates + 1, revoked + (revoked_at is not None)
    return digest.hexdigest(), certificates, revoked


def read_facts(db: Session) -> DatabaseFacts:
    revision = db.exec(text("SELECT version_num FROM alembic_version")).scalars().all()  # type: ignore[call-overload]
    register, certificates, revoked = _register_digest(db)
    crl = db.exec(select(CrlPublication).order_by(col(CrlPublication.number).desc()).limit(1)).first()
    head = db.get(AuditHead, 1)
    return DatabaseFacts(
        revision=",".join(sorted(revision)),
        certificates=certificates,
        revoked=revoked,
        register_sha256=register,
        crl_number=crl.number if crl else 0,
        crl_sha256=hashlib.sha256(crl.der).hexdigest() if crl else "",
        audit_rows=head.seq if head else 0,
        audit_head=head.hash if head else "",
        policy_versions=db.exec(select(func.count()).select_from(PolicyVersion)).one(),
    )
