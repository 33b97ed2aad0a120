"""The voice section of the settings (nested by the lead as ``settings.voice``); every field is in docs/voice.md."""

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

NumberType = Literal["mobile", "fixed_line", "fixed_line_or_mobile", "toll_free", "voip", "personal_number", "uan"]


class AriSettings(BaseModel):
    """Asterisk's REST interface (ari.conf + http.conf on the PBX)."""

    url: str = "http://127.0.0.1:8088"
    """Asterisk's HTTP server; ``/ari`` is appended."""
    username: str = "sohogw"
    password: SecretStr = SecretStr("")
    application: str = "sohogw"
    """The Stasis application the callback legs enter (extensions.conf names it too)."""
    endpoint: str = "PJSIP/{number}@trunk"
    """Dial string; ``{number}`` becomes the E.164 number."""
    caller_id: str = ""
    """What the agent's phone shows, e.g. the contact center's own number."""
    ring_seconds: Annotated[int, Field(ge=5, le=120)] = 30
    reconnect_max_seconds: Annotated[float, Field(gt=0, le=300)] = 30.0


class CtiWebhookSettings(BaseModel):
    """A contact-center platform spoken to with signed JSON webhooks (docs/voice.md, "CTI webhook")."""

    url: str = ""
    """Where the gateway posts agent commands (login, logout, ready, not_ready)."""
    secret: SecretStr = SecretStr("")
    """Shared HMAC-SHA256 key for both directions."""
    window_seconds: Annotated[int, Field(ge=5, le=3600)] = 300
    """Signed messages older or newer than this (by their timestamp) are refused."""
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 5.0


DEFAULT_SURVEY_TEXT = (
    "Thank you for your call. How satisfied were you? Reply {lowest}-{highest} ({highest} = very satisfied), "
    "STOP to opt out. 感谢您的来电，请回复{lowest}-{highest}为本次服务评分（{highest}为非常满意），回复STOP退订。"
)


class SurveySettings(BaseModel):
    """The SMS satisfaction survey after each answered customer call (docs/voice.md, "Satisfaction survey")."""

    enabled: bool = False
    text: str = DEFAULT_SURVEY_TEXT
    """What the customer receives; this site's wording, ``{lowest}`` and ``{highest}`` become the score range."""
    lowest: Annotated[int, Field(ge=0, le=9)] = 1
    highest: Annotated[int, Field(ge=1, le=9)] = 5
    stop_words: list[str] = ["STOP", "TD", "退订"]
    """Replies (compared case-insensitively, trimmed) that opt the number out of every future survey."""
    reply_hours: Annotated[int, Field(ge=1, le=720)] = 48
    """A reply later than this after the survey was sent is stored as late and not scored."""
    inbound_secret: SecretStr = SecretStr("")
    """Shared HMAC-SHA256 key of the SMS gateway's inbound webhook (signed as the CTI webhook)."""
    window_seconds: Annotated[int, Field(ge=5, le=3600)] = 300
    send_seconds: Annotated[int, Field(ge=1, le=3600)] = 15
    """How often the background pass sends pending surveys."""
    batch: Annotated[int, Field(ge=1, le=1000)] = 50
    """Surveys one pass sends at most."""
    unconfirmed_seconds: Annotated[int, Field(ge=90, le=86400)] = 300
    """A survey still ``sending`` this long after its attempt began (its node died, or the SMS gateway hung, before
    the outcome was recorded) is tried again. Above the SMS adapter's longest timeout (60 s), so a live attempt is
    never taken for a dead one."""
    attempts: Annotated[int, Field(ge=1, le=10)] = 3
    """Attempts at most, the first included; an attempt still unconfirmed after the last is recorded as failed. Each
    attempt sends the survey's own ``Idempotency-Key``, so a gateway that honours it texts the customer once; with a
    gateway that does not, set 1 (an unconfirmed survey is then failed, never sent again)."""

    @model_validator(mode="after")
    def _usable(self) -> "SurveySettings":
        if self.lowest >= self.highest:
            raise ValueError("voice.survey.lowest must be below voice.survey.highest")
        # Fail closed: an unsigned inbound webhook would let anyone score agents or opt customers out.
        if self.enabled and len(self.inbound_secret.get_secret_value()) < 16:
            raise ValueError("voice.survey.inbound_secret of 16+ characters is needed when the survey is enabled")
        return self

    def message(self) -> str:
        return self.text.replace("{lowest}", str(self.lowest)).replace("{highest}", str(self.highest))


class VoiceSettings(BaseModel):
    """Who may be called where, and how hard the gateway tries to keep the nailed-up leg up."""

    platform: Literal["none", "ari", "webhook"] = "none"
    allowed_countries: list[str] = ["CN"]
    """ISO 3166 region codes a callback number may belong to."""
    allowed_types: list[NumberType] = ["mobile", "fixed_line", "fixed_line_or_mobile"]
    """phonenumbers' number types; premium rate, shared cost, short codes and special services are never allowed."""
    require_hr_vetted: bool = False
    """Only call numbers HR has vetted (set by the enrollment capability through ``mark_vetted``)."""
    changes_need_approval: bool = False
    """A confirmed new or changed number waits for an administrator's approval before it is called."""
    code_length: Annotated[int, Field(ge=4, le=10)] = 6
    code_ttl_seconds: Annotated[int, Field(ge=60, le=3600)] = 600
    code_max_attempts: Annotated[int, Field(ge=1, le=10)] = 5
    code_resend_seconds: Annotated[int, Field(ge=10, le=3600)] = 60
    """A new code goes to the same number at most this often."""
    codes_per_hour: Annotated[int, Field(ge=1, le=100)] = 5
    """Codes texted per agent per hour over all numbers: every text costs money and rings someone's phone."""
    callback_at_login: bool = True
    """Call the agent back when the home session starts; otherwise when the agent says "ready"."""
    max_dial_attempts: Annotated[int, Field(ge=1, le=20)] = 3
    """Unanswered dials in a row before the leg is reported failed."""
    redial_backoff_seconds: list[Annotated[float, Field(ge=0)]] = [5.0, 15.0, 60.0]
    """Wait before the n-th re-dial; the last value repeats."""
    callbacks_per_hour: Annotated[int, Field(ge=1)] = 20
    """Dials per agent per hour, re-dials included: a runaway loop cannot ring a phone all night."""
    call_state_dir: Path | None = None
    """Write ``<dir>/<session id>.json`` for the agent console (``SOHOGW_CALL_STATE``)."""
    reconcile_seconds: Annotated[int, Field(ge=1, le=300)] = 5
    ack_digit: Annotated[str, Field(pattern=r"^[0-9*#A-D]$")] | None = None
    """When set, an answered callback counts as connected only after this key is pressed on the phone (a voicemail
    that answers never makes the agent available); None: answering is enough."""
    ack_seconds: Annotated[int, Field(ge=3, le=120)] = 15
    help_code: Annotated[str, Field(pattern=r"^[0-9*#A-D]{1,4}$")] | None = None
    """Keys the agent presses on the connected line to ask a supervisor for help (e.g. ``*9``); None: off."""
    """How long after answering the key may come; then the dial counts as unanswered and is re-dialled."""
    ari: AriSettings = AriSettings()
    webhook: CtiWebhookSettings = CtiWebhookSettings()
    survey: SurveySettings = SurveySettings()

    @field_validator("allowed_countries")
    @classmethod
    def _upper_regions(cls, regions: list[str]) -> list[str]:
        return [region.upper() for region in regions]

    @field_validator("redial_backoff_seconds")
    @classmethod
    def _some_backoff(cls, delays: list[float]) -> list[float]:
        if not delays:
            raise ValueError("give at least one delay")
        return delays

    @model_validator(mode="after")
    def _platform_secrets(self) -> "VoiceSettings":
        # Fail closed: an ARI without a password or a webhook without a secret would accept anyone.
        if self.platform == "ari" and not self.ari.password.get_secret_value():
            raise ValueError("voice.ari.password must be set when voice.platform is ari")
        if self.platform == "webhook" and (len(self.webhook.secret.get_secret_value()) < 16 or not self.webhook.url):
            raise ValueError("voice.webhook.url and a voice.webhook.secret of 16+ characters are needed for webhook")
        return self

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before re-dial number ``attempt`` (1-based)."""
        return self.redial_backoff_seconds[min(attempt, len(self.redial_backoff_seconds)) - 1]
