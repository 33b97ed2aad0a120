"""The effective policy of one person: all of their groups merged, each value with its reason."""

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from policy.errors import PolicyError
from policy.rules import DisplayRules
from policy.schema import GuacamoleApp, Role, ShiftWindow, Storage, X11App
from policy.values import Destination, format_duration


@dataclass(frozen=True, slots=True)
class GroupShift:
    """A shift window and the group that set it (for the explanation and the audit)."""

    group: str
    window: ShiftWindow

    def __str__(self) -> str:
        window = self.window
        days = ",".join(window.days)
        return f"{self.group}: {days} {window.start:%H:%M}-{window.end:%H:%M} {window.time_zone}"


@dataclass(frozen=True, slots=True)
class EffectivePolicy:
    """What `evaluate` decided for a set of groups at one moment; pure data, safe to cache per login."""

    groups: tuple[str, ...]
    """The policy groups that applied, in document order; groups the policy does not name are ignored."""
    roles: frozenset[Role]
    apps: tuple[X11App | GuacamoleApp, ...]
    display: DisplayRules
    watermark_template: str | None
    """None when no group turns the watermark on."""
    idle_timeout: timedelta
    max_session: timedelta
    shifts: tuple[GroupShift, ...]
    """Empty means no group restricts the time of day."""
    network_scope: tuple[Destination, ...]
    require_client_certificate: bool
    require_totp: bool
    recording: bool
    recording_apps: frozenset[str] | None
    """The apps recorded when `recording` is on; None: every app."""
    recording_customer_calls_only: bool
    view_only_supervision: bool
    notify_agent_when_watched: bool
    storage: Storage
    evaluated_at: datetime
    reasons: Mapping[str, str]

    def explain(self, name: str) -> str:
        """Why a value is what it is, e.g. ``explain("clipboard_out") == "SOHO-Agents: default off"``."""
        try:
            return self.reasons[name]
        except KeyError:
            raise KeyError(f"no policy value {name!r}; explainable values: {', '.join(self.reasons)}") from None

    def app(self, app_id: str) -> X11App | GuacamoleApp:
        """The published app, or `PolicyError` when none of the person's groups publishes it."""
        for app in self.apps:
            if app.id == app_id:
                return app
        groups = ", ".join(self.groups) or "no policy group"
        raise PolicyError(f"app {app_id!r} is not published to {groups}")

    def records(self, app_id: str, in_customer_call: bool) -> bool:
        """Whether a seat of `app_id` is recorded now (`in_customer_call`: a customer call is up on the leg)."""
        if not self.recording or (self.recording_apps is not None and app_id not in self.recording_apps):
            return False
        return in_customer_call or not self.recording_customer_calls_only

    def as_dict(self) -> dict[str, object]:
        """Plain JSON-ready data: for the admin page, the audit row and the golden files."""
        return {
            "groups": list(self.groups),
            "roles": sorted(self.roles),
            "apps": [app.id for app in self.apps],
            "display": asdict(self.display),
            "watermark_template": self.watermark_template,
            "idle_timeout": format_duration(self.idle_timeout),
            "max_session": format_duration(self.max_session),
            "shifts": [str(shift) for shift in self.shifts],
            "network_scope": [str(destination) for destination in self.network_scope],
            "require_client_certificate": self.require_client_certificate,
            "require_totp": self.require_totp,
            "recording": self.recording,
            "recording_scope": {
                "apps": "all" if self.recording_apps is None else sorted(self.recording_apps),
                "customer_calls_only": self.recording_customer_calls_only,
            },
            "view_only_supervision": self.view_only_supervision,
            "notify_agent_when_watched": self.notify_agent_when_watched,
            "reasons": dict(self.reasons),
        }
