"""The seat broker's settings; the lead nests them as ``settings.seats``."""

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field, SecretStr, field_validator

_REPO = Path(__file__).resolve().parents[2]


class RecordingSettings(BaseModel):
    """Where screen recordings are written and kept, for how long, and how much disk they may take
    (docs/recordings.md)."""

    in_progress_dir: Path = Path("/var/lib/sohogw/recordings")
    """Where guacd writes recordings while they run: policy's ``storage.recording_path`` as this host sees it.
    guacd makes it 0700 (its user); plaintext lives here until the recording closes and is sealed."""
    sealed_dir: Path | None = None
    """Sealed (encrypted) recordings; default ``<data_dir>/recordings-sealed`` (apart from ``in_progress_dir``)."""
    key_file: Path | None = None
    """The AES-256-GCM key (made on first use, 0600); default ``<data_dir>/recordings.key``. Back it up apart."""
    guacd_address: str = "127.0.0.1:4822"
    """guacd's ``host:port`` for the gateway's own recording connections to X11 seats."""
    retention_days: Annotated[int, Field(ge=1, le=3650)] = 90
    """Sealed recordings older than this are purged."""
    quota_bytes: Annotated[int, Field(ge=1)] = 50 * 1024**3
    """Sealed plus in-progress recordings may take at most this much; then the oldest sealed ones are purged, and
    when that is not enough no new recording starts (refused, audited, alerted)."""
    free_space_floor_bytes: Annotated[int, Field(ge=0)] = 5 * 1024**3
    """No new recording starts while the disk holding the recordings has less than this free."""


class SeatSettings(BaseModel):
    """How many X11 seats this node keeps warm and runs, and how long a dropped browser may come back."""

    enabled: bool = True
    """Run the X11 seat pool on this node (needs Xvfb, x11vnc, xprintidle)."""
    warm_per_app: Annotated[int, Field(ge=0, le=50)] = 2
    """Seats kept started and unassigned per published X11 app and display rules."""
    cap_per_node: Annotated[int, Field(ge=1, le=500)] = 40
    """Seats (assigned and warm) this node runs at most; a launch beyond it is refused with a clear message."""
    reconnect_grace_seconds: Annotated[int, Field(ge=5, le=3600)] = 120
    """A seat whose browser left is kept this long for a reconnect (same session), then recycled."""
    launch_token_seconds: Annotated[int, Field(ge=5, le=30)] = 30
    """Lifetime of a one-time launch token (the seat page's websocket must open within it)."""
    open_only_app: bool = False
    """An agent whose policy publishes exactly one app lands on it at sign-in: the sign-in's answer is that app's
    seat page (no workspace page, no second click). The workspace page stays at ``/agent``."""
    homes_root: Path = Path("/var/lib/sohogw/seats")
    runtime_root: Path = Path("/run/sohogw/seats")
    app_python: str = "/usr/bin/python3"
    """The interpreter for apps whose command starts with ``python`` (Debian's, which has python3-tk)."""
    guacamole_secret: SecretStr | None = None
    """Broker secret the guacamole-lite key is derived from; without it Guacamole apps cannot be launched."""
    guacamole_websocket_url: str | None = None
    """Where the browser opens guacamole-lite's websocket, e.g. ``wss://portal.example/guac/`` (the TLS proxy in
    front of server.js); without it Guacamole apps cannot be launched."""
    guacamole_passwords: dict[str, Path] = Field(default_factory=dict)
    """Published Guacamole app id → a file (mode 0600) holding its RDP/VNC account's password. Read at each launch
    and carried only inside the encrypted launch token: never in policy, a URL, a log or a process's argv."""
    guacamole_js_dir: Path = _REPO / "deploy/guacamole-lite/node_modules/guacamole-common-js/dist/esm"
    """guacamole-common-js's ES module, served by the gateway at ``/guacamole-js`` (the version server.js's
    lock file pins; one origin for every seat page)."""
    seat_viewer_dir: Path = _REPO / "deploy/seat-viewer/dist"
    """The seat pages' noVNC bundle and its ``manifest.json``, built at install time (``deploy/seat-viewer``)."""
    guacd_address: str | None = None
    """guacd's ``host:port`` as guacamole-lite reaches it (its GUACD_HOST/GUACD_PORT): the guacd that holds the
    seats' live connections. The screen wall joins them there read-only for its pictures (none without it);
    `sohogw config check` says whether guacd answers."""
    call_state_root: Path | None = Path("/run/sohogw/seat-calls")
    """Each seat's call-state file, ``<root>/<seat id>/call-state.json`` (readable only by the seat's user),
    which the broker keeps equal to the holder's customer calls; None: the app simulates calls itself."""

    recording: RecordingSettings = Field(default_factory=RecordingSettings)

    def guacd(self) -> tuple[str, int] | None:
        """``guacd_address`` as a socket address, or None when it is not set."""
        if self.guacd_address is None:
            return None
        host, _, port = self.guacd_address.rpartition(":")
        return host.strip("[]"), int(port)

    @field_validator("guacamole_websocket_url")
    @classmethod
    def _websocket_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("ws://", "wss://")):
            raise ValueError("must be a ws:// or wss:// URL")
        return url
