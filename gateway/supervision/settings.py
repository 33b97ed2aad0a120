"""Supervision's section of the settings (nested by the lead as ``settings.supervision``)."""

from ipaddress import IPv4Network, IPv6Network
from typing import Annotated, Literal

from pydantic import BaseModel, Field, IPvAnyNetwork, SecretStr, field_validator

from gateway.notify.sms import SmsSettings


class MailSettings(BaseModel):
    """The SMTP server alerts and call-ins are sent through; without ``host`` no mail is sent."""

    host: str | None = None
    port: Annotated[int, Field(ge=1, le=65535)] = 25
    starttls: bool = False
    username: str | None = None
    password: SecretStr | None = None
    sender: str = "sohogw@localhost"
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 10.0


class TeamAlertRecipients(BaseModel):
    """Who is told of the alerts about one team's agents."""

    mail_to: list[str] = []
    sms_to: list[str] = []
    """E.164 numbers."""


class SupervisionSettings(BaseModel):
    """Alert thresholds, where alerts go, the wall's tick, the office networks and the platform's API secret."""

    break_max_minutes: Annotated[float, Field(gt=0)] = 15.0
    """A break longer than this raises ``break_too_long``."""
    ready_idle_minutes: Annotated[float, Field(gt=0)] = 5.0
    """A seat idle this long while its agent is ready raises ``idle_while_ready``."""
    link_down_seconds: Annotated[float, Field(gt=0)] = 180.0
    """No WireGuard handshake for this long (it re-handshakes every 2 min under traffic) means the link is down."""
    failed_logins: Annotated[int, Field(ge=1)] = 5
    failed_logins_window_minutes: Annotated[float, Field(gt=0)] = 15.0
    alert_check_seconds: Annotated[float, Field(gt=0, le=5)] = 2.0
    """How often the alert rules run: alerts are raised within this plus the time to send them."""
    wall_tick_seconds: Annotated[float, Field(gt=0, le=15)] = 1.0
    """How often the wall's snapshot is recomputed for all viewers (state changes also nudge it at once)."""
    state_limit_minutes: dict[Literal["ready", "on_call", "wrap_up", "offline"], Annotated[float, Field(gt=0)]] = {
        "on_call": 15.0,
        "wrap_up": 3.0,
        "offline": 10.0,
    }
    """How long an agent may stay in a state before their tile on the wall turns red (a break: ``break_max_minutes``);
    a state not named never does."""
    wall_amber_share: Annotated[float, Field(gt=0, lt=1)] = 0.8
    """A tile's timer turns amber at this share of its state's limit, so a supervisor sees it coming."""
    office_networks: list[IPvAnyNetwork] = []
    """Source networks of the offices: a session from one of them counts as on-site, any other as home."""
    team_groups: list[str] = []
    """Directory groups that are teams on the wall and in reports; empty: every group an agent is in."""
    alert_mail_to: list[str] = []
    """Mail addresses that get every alert (supervisors of every team, a duty desk)."""
    alert_sms_to: list[str] = []
    """E.164 numbers that get every alert by SMS."""
    team_alerts: dict[str, TeamAlertRecipients] = {}
    """Who gets the alerts about each team's agents, keyed by the team group as the policy's ``team_scope`` names it
    (name, DN or SID; compared as the policy compares groups), so a team's supervisors are not told of other teams'
    agents. An alert about no agent (a certificate nobody holds) goes only to ``alert_mail_to`` / ``alert_sms_to``."""
    platform_secret: SecretStr | None = None
    """HMAC-SHA256 key of the contact-center platform's work-state API; without it the API refuses everything."""

    @field_validator("platform_secret")
    @classmethod
    def _platform_secret_long_enough(cls, secret: SecretStr | None) -> SecretStr | None:
        # An empty HMAC key is a key everyone knows: anyone could sign work states for any agent.
        if secret is not None and len(secret.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters; leave it unset to turn the work-state API off")
        return secret

    platform_max_skew_seconds: Annotated[int, Field(ge=1, le=3600)] = 300
    metrics_networks: list[IPvAnyNetwork] = [IPv4Network("127.0.0.1/32"), IPv6Network("::1/128")]
    """Who may scrape ``/metrics``; everyone else gets 403."""
    mail: MailSettings = MailSettings()
    sms: SmsSettings = SmsSettings()

    def wall_limits(self) -> dict[str, tuple[float, float]]:
        """Seconds in a state after which a wall tile turns amber and red, by state."""
        limits = [*self.state_limit_minutes.items(), ("break", self.break_max_minutes)]
        return {state: (minutes * 60 * self.wall_amber_share, minutes * 60) for state, minutes in limits}
