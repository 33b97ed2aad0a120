"""Why the supervision domain refuses or fails, as errors the gateway reports with a reason."""

from gateway.errors import Conflict, GatewayError, NotFound, Unauthenticated, Unavailable


class InvalidBulletin(GatewayError):
    status_code = 422
    reason = "invalid_bulletin"


class NothingToWatch(Conflict):
    reason = "seat.view.nothing_to_watch"


class SurgeRefused(GatewayError):
    status_code = 422
    reason = "surge_refused"


class MailNotSent(Unavailable):
    reason = "mail_not_sent"


class AgentNotInScope(NotFound):
    """Unknown, gone, or another team's agent: one answer for all three."""

    reason = "supervision.agent_not_found"


class ScreenViewingUnavailable(Unavailable):
    reason = "screen_viewing_unavailable"


class NoPicture(NotFound):
    reason = "supervision.no_picture"


class UnknownWorkState(GatewayError):
    status_code = 422
    reason = "unknown_work_state"


class NoLiveAgent(NotFound):
    reason = "supervision.help.no_live_agent"


class PlatformRefused(Unauthenticated):
    reason = "platform_refused"


class BadPeriod(GatewayError):
    status_code = 422
    reason = "supervision.reports.bad_period"


class BadDate(GatewayError):
    status_code = 422
    reason = "supervision.reports.bad_date"
