"""The registry of every table: importing this module puts them all on ``SQLModel.metadata`` for Alembic."""

from gateway.audit.models import AuditEvent, AuditHead
from gateway.pki.models import CrlPublication, IssuedCertificate, TrustedAuthority

__all__ = ["AuditEvent", "AuditHead", "CrlPublication", "IssuedCertificate", "TrustedAuthority"]
