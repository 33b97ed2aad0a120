"""Dependencies of the enrollment routes: its settings and the hand-off context (script CSRF is
``gateway.sessions.deps.ScriptCsrf``)."""

from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request

from gateway.enrollment.handoff import HandOff
from gateway.enrollment.settings import EnrollmentSettings


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
