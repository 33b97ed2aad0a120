"""Voice routes' dependencies: the voice and SMS sections of the app's settings."""

from typing import Annotated

from fastapi import Depends, Request

from gateway.notify.sms import SmsSettings
from gateway.voice.settings import VoiceSettings


def _voice_settings(request: Request) -> VoiceSettings:
    return request.app.state.settings.voice  # type: ignore[no-any-return]


def _sms_settings(request: Request) -> SmsSettings:
    return request.app.state.settings.sms  # type: ignore[no-any-return]


VoiceSettingsDep = Annotated[VoiceSettings, Depends(_voice_settings)]
SmsSettingsDep = Annotated[SmsSettings, Depends(_sms_settings)]
