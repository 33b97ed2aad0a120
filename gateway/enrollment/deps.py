"""Dependencies of the enrollment routes: its settings, the hand-off context, and CSRF for script requests."""

import hmac
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request

from gateway.enrollment.handoff import HandOff
from gateway.enrollment.settings import EnrollmentSettings
from gateway.sessions.deps import CsrfRefused, CurrentSession
from gateway.sessions.models import HomeSession


def _settings(request: Request) -> EnrollmentSettings:
    return request.app.state.settings.enrollment  # type: ignore[no-any-return]


EnrollmentSettingsDep = Annotated[EnrollmentSettings, Depends(_settings)]


def _handoff(request: Request, settings: EnrollmentSettingsDep) -> HandOff:
    app_state = request.app.state
    return HandOff(
        directory=app_state.login_services.directory,
        authority=app_state.authority,
        crl_validity=timedelta(hours=app_state.settings.ca.crl_validity_hours),
        agent_group=settings.agent_group,
    )


HandOffDep = Annotated[HandOff, Depends(_handoff)]


def _header_csrf(request: Request, session: CurrentSession) -> HomeSession:
    """The environment check's scripted requests carry the session's CSRF secret in ``X-CSRF-Token``."""
    given = request.headers.get("x-csrf-token", "")
    if not given or not hmac.compare_digest(given.encode(), session.csrf_token.encode()):
        raise CsrfRefused("the page expired; reload it and try again")
    return session


ScriptCsrf = Annotated[HomeSession, Depends(_header_csrf)]
