"""Supervision's settings as a dependency (``settings.supervision``).

Tests swap it with ``app.dependency_overrides[supervision_settings]``.
"""

from typing import Annotated

from fastapi import Depends, Request

from gateway.supervision.settings import SupervisionSettings


def supervision_settings(request: Request) -> SupervisionSettings:
    return request.app.state.settings.supervision  # type: ignore[no-any-return]


SupervisionSettingsDep = Annotated[SupervisionSettings, Depends(supervision_settings)]
