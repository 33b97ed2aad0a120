"""Dependencies of the enrollment routes: its settings and the hand-off context (script CSRF is
``gateway.sessions.deps.ScriptCsrf``)."""

from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import State

from gateway.enrollment.handoff import HandOff
from gateway.enrollment.settings import EnrollmentSettings


def _settings(request: Request) -> EnrollmentSettings:
    return request.app.state.settings.enrollment  # type: ignore[no-any-return]


EnrollmentSettingsDep = Annotated[EnrollmentSettings, Depends(_settings)]


def handoff_of(app_state: State) -> HandOff:
    """The hand-off context of the app: its directory and CA, as the routes and the membership worker use them."""
    return HandOff(
        directory=app_state.login_services.directory,
        authority=app_state.authority,
        crl_validity=timedelta(hours=app_state.settings.ca.crl_validity_hours),
        agent_group=app_state.settings.enrollment.agent_group,
    )


def _handoff(request: Request) -> HandOff:
    return handoff_of(request.app.state)


HandOffDep = Annotated[HandOff, Depends(_handoff)]
