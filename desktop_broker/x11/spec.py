"""The plain parameters a kiosk seat starts from, and how they compile to x11vnc flags.

Kept free of processes so the compilation of display rules into flags can be tested on its own.
"""

import secrets
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from policy.rules import DisplayRules
from policy.schema import SeatLimits
from policy.values import Destination

# VNC authentication (RFB 3.8 §7.2.2) uses only the first 8 bytes of a password as a DES key.
VNC_PASSWORD_LENGTH = 8
_PASSWORD_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True, slots=True)
class RfbAddress:
    """Where the gateway's websocket bridge connects: the seat's x11vnc on loopback."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Geometry:
    """Size of the seat's virtual screen."""

    width: int = 1280
    height: int = 800
    depth: int = 24

    def __str__(self) -> str:
        return f"{self.width}x{self.height}x{self.depth}"


@dataclass(frozen=True, slots=True)
class SeatPasswords:
    """The one-time passwords of one seat session: the agent's, and the supervisors' view-only one."""

    full_access: str
    view_only: str

    def __post_init__(self) -> None:
        for name, value in (("full_access", self.full_access), ("view_only", self.view_only)):
            if len(value) != VNC_PASSWORD_LENGTH or "\n" in value:
                raise ValueError(f"{name} must be exactly {VNC_PASSWORD_LENGTH} characters without newline")
        if self.full_access == self.view_only:
            raise ValueError("the view-only password must differ from the full-access one")

    @classmethod
    def generate(cls) -> "SeatPasswords":
        """Two fresh random passwords (62^8 ≈ 2·10^14 each; they live only as long as the seat)."""

        def one() -> str:
            return "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(VNC_PASSWORD_LENGTH))

        full = one()
        view = one()
        while view == full:
            view = one()
        return cls(full, view)

    def passwd_file_text(self) -> str:
        """x11vnc's -passwdfile format: full-access lines, then view-only ones after the marker."""
        return f"{self.full_access}\n__BEGIN_VIEWONLY__\n{self.view_only}\n"


@dataclass(frozen=True, slots=True)
class SeatSpec:
    """Everything one seat needs: the published app, its rules, the watermark and the passwords."""

    app_argv: Sequence[str]
    rules: DisplayRules
    watermark: str
    passwords: SeatPasswords
    geometry: Geometry = Geometry()
    app_env: Mapping[str, str] = field(default_factory=dict)
    feed_dir: Path | None = None
    """A directory the broker writes and only the seat's user may read (the app's call state): made
    root-owned, group = the seat user's, mode 0750, before the app starts; removed by `stop()`."""
    limits: SeatLimits = SeatLimits()  # noqa: RUF009 - frozen pydantic model, immutable
    """pids, memory and CPU of the whole seat (its cgroup), from the app's policy."""
    egress: tuple[Destination, ...] = ()
    """The only destinations the seat's processes may connect to (the app's backends in policy)."""


def clipboard_flags(rules: DisplayRules) -> list[str]:
    """x11vnc flags that let only the clipboard directions the rules allow cross.

    PRIMARY (the highlight-to-copy selection) never crosses: an agent merely selecting a customer's
    data would otherwise send it home. Only the explicit CLIPBOARD selection can be allowed.
    """
    never_primary = ["-noprimary", "-nosetprimary"]
    if rules.clipboard_in and rules.clipboard_out:
        return never_primary
    if rules.clipboard_out:
        return [*never_primary, "-seldir", "send", "-nosetclipboard"]
    if rules.clipboard_in:
        return [*never_primary, "-seldir", "recv", "-noclipboard"]
    return ["-nosel", *never_primary, "-noclipboard", "-nosetclipboard"]


# Why each flag: -localhost keeps RFB off the network (the gateway bridges it); -safer implies -noremote
# and -novncconnect, so no X client on the display (the app) can steer x11vnc via the X11VNC_REMOTE
# property, e.g. to switch the clipboard back on; -nocmds forbids running external commands; -norc
# ignores ~/.x11vncrc; -sb 0 stops the idle throttle that made a pooled seat's first frame take 2 s;
# -forever -shared keep the seat up across reconnects and let a supervisor watch alongside the agent;
# -speeds states the link (the gateway's loopback: 100 MB/s, 1 ms; the framebuffer read rate still measured, "0"),
# because measuring it times each new client's first updates in a loop that reads nobody's screen until that client
# asks again, up to 5-15 s: the screen wall asks every 2 s, a launch's held connection not at all, and every picture
# of the seat, the agent's too, froze meanwhile.
HARDENING_FLAGS = [
    "-localhost",
    "-noipv6",
    "-safer",
    "-noremote",
    "-nocmds",
    "-norc",
    "-nolookup",
    "-noxrecord",
    "-nobell",
    "-sb",
    "0",
    "-forever",
    "-shared",
    "-speeds",
    "0,100000,1",
]
MEMORY_FLAGS = ["-fs", "1.0"]
"""x11vnc grabs the whole screen through one screen-sized shared-memory image when more than 3/4 of its tiles
changed (`-fs`, default 0.75); a fraction above 1 never does, so that 4 MiB segment (split between Xvfb and
x11vnc) is never made: 3.3 MiB less per seat, and a full-screen change is read tile by tile instead."""
