"""What enrollment refuses, each with a message HR or the applicant can act on."""

from gateway.errors import Conflict, GatewayError, Unavailable


class StageConflict(Conflict):
    reason = "enrollment.stage"


class ApplicationClosed(Conflict):
    reason = "enrollment.closed"


class InvalidApplication(GatewayError):
    status_code = 422
    reason = "enrollment.invalid"


class EvidenceRefused(GatewayError):
    status_code = 422
    reason = "enrollment.evidence"


class EnvcheckRefused(GatewayError):
    status_code = 422
    reason = "enrollment.envcheck"


class DirectoryChangeFailed(Unavailable):
    reason = "enrollment.directory"


class CertificateRequestRefused(GatewayError):
    status_code = 422
    reason = "certificate_request_refused"
