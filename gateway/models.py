"""The registry of every table: importing this module puts them all on ``SQLModel.metadata`` for Alembic."""

from gateway.audit.models import AuditEvent, AuditHead
from gateway.pki.models import CrlPublication, IssuedCertificate, TrustedAuthority
from gateway.policies.models import PolicyVersion
from gateway.seats.models import LaunchToken, SeatLease
from gateway.sessions.models import HomeSession, LoginAttempt, TotpSecret
from gateway.voice.models import CallbackNumber, CallEvent, CallLeg, SeenWebhookEvent

__all__ = [
    "AuditEvent",
    "AuditHead",
    "CallEvent",
    "CallLeg",
    "CallbackNumber",
    "CrlPublication",
    "HomeSession",
    "IssuedCertificate",
    "LaunchToken",
    "LoginAttempt",
    "PolicyVersion",
    "SeatLease",
    "SeenWebhookEvent",
    "TotpSecret",
    "TrustedAuthority",
]
