"""Pick the platform adapter the settings name."""

from gateway.clock import Clock
from gateway.voice.ari import AriPlatform
from gateway.voice.platform import VoicePlatform
from gateway.voice.settings import VoiceSettings
from gateway.voice.webhook import CtiWebhookPlatform


def choose_platform(settings: VoiceSettings, clock: Clock) -> VoicePlatform | None:
    """None when voice is off (``platform = "none"``): numbers can be managed, nobody is called."""
    if settings.platform == "ari":
        return AriPlatform(settings.ari, ack_digit=settings.ack_digit, help_code=settings.help_code)
    if settings.platform == "webhook":
        return CtiWebhookPlatform(settings.webhook, clock)
    return None
