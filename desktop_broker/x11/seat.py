"""One X11 kiosk seat: Xvfb, the broker's watermark, the published app as the seat user, and x11vnc.

There is no window manager, no shell and no per-seat websockify: x11vnc listens on loopback only and
the gateway bridges the browser's websocket to `rfb_address` after checking the one-time launch token
(see `rfb_bridge` and docs/seats.md).
"""

import contextlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from desktop_broker.x11 import watermark as watermark_module
from desktop_broker.x11.code_path import seat_python_path
from desktop_broker.x11.display import XDisplay, start_display, write_cookie
from desktop_broker.x11.processes import pss_kib, stop_process
from desktop_broker.x11.spec import RfbAddress, SeatSpec
from desktop_broker.x11.users import SeatUser, processes_of, provide_seat_user, remove_seat_user
from desktop_broker.x11.vnc_server import start_x11vnc

DEFAULT_HOMES_ROOT = Path("/var/lib/sohogw/seats")
DEFAULT_RUNTIME_ROOT = Path("/run/sohogw/seats")
# The watermark runs as a script under Debian's Python (needs python3-tk), the interpreter the published
# Tk app uses too, so the two share libpython and Tk pages (measured: 28.6 MiB PSS under the venv's
# statically linked Python, 11.7 MiB under Debian's).
SYSTEM_PYTHON = "/usr/bin/python3"


@dataclass(slots=True)
class SeatProcess:
    """A running seat. `failure()` names a part that died; `stop()` leaves nothing behind."""

    display: XDisplay
    user: SeatUser
    runtime_dir: Path
    watermark: subprocess.Popen[bytes]
    app: subprocess.Popen[bytes]
    x11vnc: subprocess.Popen[bytes]
    rfb_address: RfbAddress
    feed_dir: Path | None = None

    def parts(self) -> dict[str, subprocess.Popen[bytes]]:
        """The seat's processes by the name their log file carries (`<name>.log` in the runtime dir)."""
        return {
            "application": self.app,
            "watermark": self.watermark,
            "x11vnc": self.x11vnc,
            "Xvfb": self.display.process,
        }

    def failure(self) -> str | None:
        """Which part of the seat died and how, or None while every part runs."""
        for name, process in self.parts().items():
            code = process.poll()
            if code is not None:
                log = self.runtime_dir / f"{name.lower()}.log"
                tail = log.read_text(errors="replace")[-300:].strip() if log.exists() else ""
                return f"seat {self.display.name}: {name} (pid {process.pid}) exited with code {code}; log: {tail!r}"
        return None

    def alive(self) -> bool:
        return self.failure() is None

    def x_environment(self) -> dict[str, str]:
        """DISPLAY and XAUTHORITY for a trusted (root) X client of this seat, e.g. xdotool."""
        return {"DISPLAY": self.display.name, "XAUTHORITY": str(self.runtime_dir / "root.xauth")}

    def idle_seconds(self) -> float:
        """Time since the last input on the display (XScreenSaver extension, via Debian's xprintidle)."""
        result = subprocess.run(
            ["xprintidle"],
            env={**os.environ, **self.x_environment()},
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
        )
        return int(result.stdout.strip()) / 1000

    def pss_kib(self) -> dict[str, int]:
        """Memory per part (PSS), including any child the application forked as the seat user."""
        sizes = {name: pss_kib(process.pid) for name, process in self.parts().items()}
        if self.user.created:
            for pid in set(processes_of(self.user.uid)) - {self.app.pid}:
                with contextlib.suppress(FileNotFoundError):  # a helper may exit while we read
                    sizes["application"] += pss_kib(pid)
        return sizes

    def show_watermark(self, label: str) -> None:
        """Redraw the watermark with `label`: a pooled seat is started before anyone is known to hold it.

        The old strip is stopped only after the new one runs, so the display is never without one.
        """
        previous = self.watermark
        self.watermark = _spawn_watermark(label, self.x_environment(), self.runtime_dir)
        stop_process(previous)

    def stop(self) -> None:
        """Stop every part (SIGTERM, then SIGKILL), then remove the seat user, its files and the cookies."""
        for process in (self.app, self.watermark, self.x11vnc, self.display.process):
            stop_process(process)
        remove_seat_user(self.user)
        shutil.rmtree(self.runtime_dir, ignore_errors=True)
        if self.feed_dir is not None:
            shutil.rmtree(self.feed_dir, ignore_errors=True)


def start_seat(
    spec: SeatSpec, homes_root: Path = DEFAULT_HOMES_ROOT, runtime_root: Path = DEFAULT_RUNTIME_ROOT
) -> SeatProcess:
    """Bring up one seat and return once x11vnc accepts viewers on loopback.

    On any failure every part already started is stopped again before the error is raised.
    """
    runtime_root.mkdir(mode=0o700, parents=True, exist_ok=True)
    runtime_dir = Path(tempfile.mkdtemp(prefix="seat-", dir=runtime_root))
    started: list[subprocess.Popen[bytes]] = []
    user: SeatUser | None = None
    try:
        display = start_display(spec.geometry, runtime_dir)
        started.append(display.process)
        root_auth = runtime_dir / "root.xauth"
        write_cookie(root_auth, display.name, display.cookie)
        user = provide_seat_user(display.number, homes_root)
        if spec.feed_dir is not None:
            _make_feed_dir(spec.feed_dir, user)
        x_env = {"DISPLAY": display.name, "XAUTHORITY": str(root_auth)}
        watermark = _spawn_watermark(spec.watermark, x_env, runtime_dir)
        started.append(watermark)
        app = _spawn_app(spec, display, user, runtime_dir)
        started.append(app)
        x11vnc, port = start_x11vnc(spec, x_env, _base_env(), runtime_dir)
        started.append(x11vnc)
    except BaseException:
        for process in reversed(started):
            stop_process(process)
        if user is not None:
            remove_seat_user(user)
        shutil.rmtree(runtime_dir, ignore_errors=True)
        if spec.feed_dir is not None:
            shutil.rmtree(spec.feed_dir, ignore_errors=True)
        raise
    return SeatProcess(display, user, runtime_dir, watermark, app, x11vnc, RfbAddress("127.0.0.1", port), spec.feed_dir)


def _make_feed_dir(feed_dir: Path, user: SeatUser) -> None:
    """The seat's read-only inbox: the broker (owner) writes, the seat user reads through its group, nobody
    else may even list it, and the app cannot plant a file there (no write bit for the group)."""
    feed_dir.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    shutil.rmtree(feed_dir, ignore_errors=True)
    feed_dir.mkdir(mode=0o750)
    os.chown(feed_dir, os.geteuid(), user.gid)
    feed_dir.chmod(0o750)


def _base_env() -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONPATH": seat_python_path()}


def _spawn(
    argv: list[str], env: dict[str, str], log_path: Path, user: SeatUser | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            user=user.uid if user and user.created else None,
            group=user.gid if user and user.created else None,
            extra_groups=[] if user and user.created else None,
            umask=0o077,
        )


def _spawn_watermark(label: str, x_env: dict[str, str], runtime_dir: Path) -> subprocess.Popen[bytes]:
    return _spawn(
        [SYSTEM_PYTHON, str(Path(watermark_module.__file__)), label],
        {**_base_env(), **x_env},
        runtime_dir / "watermark.log",
    )


def _spawn_app(spec: SeatSpec, display: XDisplay, user: SeatUser, runtime_dir: Path) -> subprocess.Popen[bytes]:
    """The published application, as the seat user, in its empty home, with its own copy of the cookie."""
    user_auth = user.home / ".Xauthority"
    write_cookie(user_auth, display.name, display.cookie, user.uid, user.gid)
    env = {
        **_base_env(),
        "HOME": str(user.home),
        "USER": user.name,
        "LOGNAME": user.name,
        "DISPLAY": display.name,
        "XAUTHORITY": str(user_auth),
        "PYTHONDONTWRITEBYTECODE": "1",
        **spec.app_env,
    }
    return _spawn(list(spec.app_argv), env, runtime_dir / "application.log", user=user, cwd=user.home)
