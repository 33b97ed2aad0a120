"""Compile an effective policy into the parameters of an X11 kiosk seat (Xvfb + app + x11vnc)."""

from dataclasses import dataclass
from datetime import datetime

from policy.effective import EffectivePolicy
from policy.errors import PolicyError
from policy.rules import DisplayRules
from policy.schema import GuacamoleApp, X11App

TIME_FORMAT = "%Y-%m-%d %H:%M"


@dataclass(frozen=True, slots=True)
class X11SeatParams:
    """Everything the broker needs to start and police one X11 seat; pure data."""

    app_id: str
    argv: tuple[str, ...]
    x11vnc_clipboard_flags: tuple[str, ...]
    view_only_supervision: bool
    notify_agent_when_watched: bool
    watermark_template: str | None
    idle_timeout_seconds: int
    max_session_seconds: int

    def watermark_text(self, user: str, now: datetime) -> str | None:
        """The watermark drawn on the seat for `user` at `now` (in the zone `now` carries)."""
        if self.watermark_template is None:
            return None
        return self.watermark_template.format(user=user, time=now.strftime(TIME_FORMAT))


def clipboard_flags(display: DisplayRules) -> tuple[str, ...]:
    """x11vnc flags that close each clipboard direction the rules do not allow.

    Seat → browser (clipboard_out) is x11vnc watching PRIMARY and CLIPBOARD: -noprimary,
    -noclipboard. Browser → seat (clipboard_in) is x11vnc setting them: -nosetprimary,
    -nosetclipboard. With both closed, -nosel turns selection handling off altogether.
    """
    flags: list[str] = []
    if not display.clipboard_in and not display.clipboard_out:
        flags.append("-nosel")
    if not display.clipboard_out:
        flags += ["-noprimary", "-noclipboard"]
    if not display.clipboard_in:
        flags += ["-nosetclipboard", "-nosetprimary"]
    return tuple(flags)


def compile_x11(effective: EffectivePolicy, app: X11App | GuacamoleApp | str) -> X11SeatParams:
    """Seat parameters for a published X11 app; `PolicyError` if it is not published or not X11."""
    published = effective.app(app if isinstance(app, str) else app.id)
    if not isinstance(published, X11App):
        raise PolicyError(f"app {published.id!r} runs on the {published.backend} backend, not x11")
    return X11SeatParams(
        app_id=published.id,
        argv=published.command,
        x11vnc_clipboard_flags=clipboard_flags(effective.display),
        view_only_supervision=effective.view_only_supervision,
        notify_agent_when_watched=effective.notify_agent_when_watched,
        watermark_template=effective.watermark_template,
        idle_timeout_seconds=int(effective.idle_timeout.total_seconds()),
        max_session_seconds=int(effective.max_session.total_seconds()),
    )
