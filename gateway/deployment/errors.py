"""Why the deployment domain refuses or fails, as errors the gateway reports with a reason."""

from gateway.errors import GatewayError


class GroupNotFound(GatewayError):
    reason = "group_not_found"


class DumpFailed(GatewayError):
    reason = "dump_failed"


class RestoreRefused(GatewayError):
    reason = "restore_refused"


class ArchiveRefused(GatewayError):
    """The archive is not one of ours, was altered, or the passphrase is wrong: nothing of it is used."""

    reason = "archive_refused"
