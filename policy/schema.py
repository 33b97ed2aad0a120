"""The policy document's schema: an app catalogue, role requirements and one policy per AD group.

Every model forbids unknown keys (a misspelt `clipbaord_out` must not silently mean "default"),
and every security-relevant default is the closed one.
"""

import string
from dataclasses import fields
from datetime import timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from policy.rules import DisplayRules
from policy.values import ClockTime, Duration, NetworkDestination, sha256_fingerprint

Role = Literal["agent", "supervisor", "security_admin", "hr"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
RULE_NAMES: tuple[str, ...] = tuple(field.name for field in fields(DisplayRules))
DEFAULT_IDLE_TIMEOUT = timedelta(minutes=15)
DEFAULT_MAX_SESSION = timedelta(hours=8)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SeatLimits(_Strict):
    """What one X11 seat (Xvfb, x11vnc, watermark, the app and all it forks) may use on the node together."""

    pids: int = Field(default=256, ge=32, le=32768)
    """Processes and threads at once: a fork bomb in a seat stops here, not at the node's limit."""
    memory_mib: int = Field(default=1024, ge=128, le=65536)
    """Memory in MiB; past it the kernel reclaims, then kills within the seat only."""
    cpu_percent: int = Field(default=100, ge=10, le=6400)
    """CPU time as a share of one core (100 = one core, 50 = half of one)."""


class X11App(_Strict):
    """An application run in an X11 kiosk seat on this gateway."""

    id: str
    title: str
    backend: Literal["x11"]
    command: tuple[str, ...] = Field(min_length=1)
    backends: tuple[NetworkDestination, ...] = ()
    """The only destinations the seat's processes may open connections to (default: none at all)."""
    limits: SeatLimits = SeatLimits()


class GuacamoleApp(_Strict):
    """An application reached through guacd: an RDP RemoteApp, or a VNC server."""

    id: str
    title: str
    backend: Literal["guacamole"]
    protocol: Literal["rdp", "vnc"]
    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    remote_app: str | None = None
    """The RemoteApp alias published on the RDP host (without the leading "||")."""
    username: str | None = None
    """The RDP account; ``{user}`` stands for the agent's login. Its password is a gateway setting, never policy."""
    cert_fingerprints: tuple[str, ...] = ()
    """Pinned SHA-256 fingerprints of the RDP host's certificate (``sha256:ab:cd:…``); guacd accepts only these."""
    cert_trust_first_use: bool = False
    """Without pins: the broker records the certificate the host shows first (audited) and pins it from then on.
    Neither: guacd checks the certificate against the system's CAs and the host name. Never ignored."""
    security: Literal["tls", "nla"] | None = None
    """The RDP security layer guacd negotiates (compiled as `security`, "tls" unless given): always one over TLS.
    guacd's default "any" would also accept standard RDP security, which has no TLS handshake, so FreeRDP would
    check neither `cert-fingerprints` nor the CAs: a downgrade past every certificate check."""

    @field_validator("security", mode="before")
    @classmethod
    def _tls_based_security(cls, value: object) -> object:
        if value in ("any", "rdp"):
            raise ValueError(
                f"security {value!r} allows standard RDP security without TLS, where the host's certificate is "
                "never checked (pinned, learned or by the CAs): use tls or nla"
            )
        return value

    @field_validator("cert_fingerprints")
    @classmethod
    def _sha256_fingerprints(cls, fingerprints: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sha256_fingerprint(text) for text in fingerprints)

    @model_validator(mode="after")
    def _rdp_only_fields(self) -> "GuacamoleApp":
        rdp_only: dict[str, object] = {"remote_app": self.remote_app, "username": self.username}
        rdp_only |= {"cert_fingerprints": self.cert_fingerprints, "cert_trust_first_use": self.cert_trust_first_use}
        rdp_only["security"] = self.security
        if self.protocol != "rdp" and (stated := [name for name, value in rdp_only.items() if value]):
            raise ValueError(f"{', '.join(stated)} only exists for protocol rdp")
        if self.cert_fingerprints and self.cert_trust_first_use:
            raise ValueError("cert_fingerprints pin the certificate: trust on first use would be ignored, drop one")
        return self

    @property
    def effective_port(self) -> int:
        """The port guacd connects to: the protocol's well-known port unless one is given."""
        return self.port or (3389 if self.protocol == "rdp" else 5900)


App = Annotated[X11App | GuacamoleApp, Field(discriminator="backend")]


class Watermark(_Strict):
    enabled: bool = False
    template: str = "{user} {time}"

    @field_validator("template")
    @classmethod
    def _only_user_and_time(cls, template: str) -> str:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
        if unknown := sorted(names - {"user", "time"}):
            raise ValueError(f"unknown placeholder {{{unknown[0]}}} in watermark template: use {{user}} and {{time}}")
        return template


class ShiftWindow(_Strict):
    """Local working hours on some weekdays; an end before the start means the shift crosses midnight."""

    time_zone: str
    days: tuple[Weekday, ...] = Field(min_length=1)
    start: ClockTime
    end: ClockTime

    @field_validator("time_zone")
    @classmethod
    def _known_time_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r}: use an IANA name such as 'Asia/Shanghai'") from None
        return name

    @model_validator(mode="after")
    def _not_empty(self) -> "ShiftWindow":
        if self.start == self.end:
            raise ValueError("a shift whose start equals its end is ambiguous (empty or 24 hours)")
        return self


class Supervision(_Strict):
    allow_viewing: bool = True
    """Supervisors may watch this group's seats (always view-only)."""
    notify_agent_when_watched: bool = True


class RecordingScope(_Strict):
    """What a recording group records: which apps, and whether only while a customer call is up."""

    apps: tuple[str, ...] = ()
    """Empty: every app the person opens."""
    customer_calls_only: bool = False
    """Record an X11 seat only between a customer call's answer and its end (one recording per call)."""


class RoleRequirements(_Strict):
    require_client_certificate: bool = True
    require_totp: bool = False


class GroupPolicy(_Strict):
    """What one directory group grants, keyed in the document by the group's DN (or AD SID; a built-in directory
    group by its name, see `policy.groups`); a user's groups are merged by `evaluate`."""

    roles: tuple[Role, ...] = ()
    apps: tuple[str, ...] = ()
    display: dict[str, bool] = Field(default_factory=dict)
    display_exceptions: tuple[str, ...] = ()
    """Rules this group allows even when another of the user's groups forbids them."""
    watermark: Watermark = Watermark()
    idle_timeout: Duration | None = None
    max_session: Duration | None = None
    shifts: tuple[ShiftWindow, ...] = ()
    network_scope: tuple[NetworkDestination, ...] = ()
    recording: bool = False
    """Record the screens of this group's seats on the server (docs/recordings.md)."""
    recording_scope: RecordingScope = RecordingScope()
    supervision: Supervision = Supervision()

    @field_validator("display")
    @classmethod
    def _known_rules(cls, display: dict[str, bool]) -> dict[str, bool]:
        for name in display:
            if name not in RULE_NAMES:
                raise ValueError(f"unknown display rule {name!r}: known rules are {', '.join(RULE_NAMES)}")
        return display


class Storage(_Strict):
    """Where guacd keeps files on its side; each user gets a folder of their own under `drive_path`."""

    recording_path: str = "/var/lib/sohogw/recordings"
    drive_path: str = "/var/lib/sohogw/drives"


class TeamScope(_Strict):
    """Which supervisors see which team: a supervisor sees, watches, is alerted about and reports on only the agents
    of the teams their groups are mapped to (see `policy.teams`). Keys and values are group DNs or SIDs."""

    teams: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    """Team group → the supervisor groups that see its agents."""
    all_teams: tuple[str, ...] = ()
    """Groups whose supervisors see every agent (quality assurance)."""


class PolicyDocument(_Strict):
    version: Literal[1] = 1
    apps: tuple[App, ...] = ()
    roles: dict[Role, RoleRequirements] = Field(default_factory=dict)
    groups: dict[str, GroupPolicy] = Field(default_factory=dict)
    storage: Storage = Storage()
    team_scope: TeamScope | None = None
    """None: no team scope, every supervisor sees every agent (as before team scope existed)."""

    def app(self, app_id: str) -> X11App | GuacamoleApp:
        for app in self.apps:
            if app.id == app_id:
                return app
        raise KeyError(app_id)

    def requirements(self, role: Role) -> RoleRequirements:
        return self.roles.get(role, RoleRequirements())
