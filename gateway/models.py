"""The registry of every table: importing this module puts them all on ``SQLModel.metadata`` for Alembic."""

from gateway.audit.models import AuditEvent, AuditHead
from gateway.enrollment.models import Application, CertificateRequest, EnvcheckRun, Evidence, ImportRun, StageDecision
from gateway.nodes.models import GatewayNode, WorkerSchedule
from gateway.pki.models import CrlPublication, IssuedCertificate, TrustedAuthority
from gateway.policies.models import PolicyVersion
from gateway.seats.models import LaunchToken, RdpHostCertificate, ScreenRecording, SeatLease
from gateway.sessions.models import (
    HomeSession,
    LoginAttempt,
    LoginThrottle,
    TotpEnrolmentCode,
    TotpRecoveryCode,
    TotpSecret,
)
from gateway.supervision.models import Alert, Bulletin, CallIn, HelpRequest, ScreenWatch, StandbyAgent, WorkState
from gateway.voice.models import (
    CallbackNumber,
    CallEvent,
    CallLeg,
    SatisfactionSurvey,
    SeenWebhookEvent,
    SurveyOptOut,
    SurveyReply,
)
from gateway.vpn.models import AddressAssignment, DesiredStateVersion, TunnelLease

__all__ = [
    "AddressAssignment",
    "Alert",
    "Application",
    "AuditEvent",
    "AuditHead",
    "Bulletin",
    "CallEvent",
    "CallIn",
    "CallLeg",
    "CallbackNumber",
    "CertificateRequest",
    "CrlPublication",
    "DesiredStateVersion",
    "EnvcheckRun",
    "Evidence",
    "GatewayNode",
    "HelpRequest",
    "HomeSession",
    "ImportRun",
    "IssuedCertificate",
    "LaunchToken",
    "LoginAttempt",
    "LoginThrottle",
    "PolicyVersion",
    "RdpHostCertificate",
    "SatisfactionSurvey",
    "ScreenRecording",
    "ScreenWatch",
    "SeatLease",
    "SeenWebhookEvent",
    "StageDecision",
    "StandbyAgent",
    "SurveyOptOut",
    "SurveyReply",
    "TotpEnrolmentCode",
    "TotpRecoveryCode",
    "TotpSecret",
    "TrustedAuthority",
    "TunnelLease",
    "WorkState",
    "WorkerSchedule",
]
