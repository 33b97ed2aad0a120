"""The seat's virtual X display: an Xvfb with a private cookie, no TCP and no OpenGL.

Xvfb picks its own free display number (`-displayfd`), so seats started at the same time never race
for one. Only holders of the seat's MIT-MAGIC-COOKIE-1 may connect: x11vnc, the watermark, the app.
"""

import os
import secrets
import select
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from desktop_broker.x11.errors import SeatStartFailed
from desktop_broker.x11.spec import Geometry

DISPLAY_START_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class XDisplay:
    """A running Xvfb and the cookie file its trusted clients use."""

    process: subprocess.Popen[bytes]
    number: int
    cookie: str

    @property
    def name(self) -> str:
        return f":{self.number}"


def start_display(geometry: Geometry, runtime_dir: Path) -> XDisplay:
    """Start Xvfb and return once it accepts connections (it writes its number only when ready)."""
    cookie = secrets.token_hex(16)
    server_auth = runtime_dir / "server.xauth"
    # The X server accepts every cookie in its -auth file whatever display number it is filed under.
    write_cookie(server_auth, ":0", cookie)
    read_end, write_end = os.pipe()
    log = (runtime_dir / "xvfb.log").open("wb")
    argv = [
        "Xvfb",
        "-displayfd",
        str(write_end),
        "-screen",
        "0",
        str(geometry),
        "-nolisten",
        "tcp",
        "-auth",
        str(server_auth),
        "-extension",
        "GLX",
        "-noreset",
    ]
    try:
        process = subprocess.Popen(
            argv, pass_fds=(write_end,), stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    finally:
        os.close(write_end)
        log.close()
    try:
        number = _read_display_number(read_end, process, runtime_dir)
    except SeatStartFailed:
        process.kill()
        process.wait()
        raise
    finally:
        os.close(read_end)
    return XDisplay(process, number, cookie)


def write_cookie(path: Path, display: str, cookie: str, uid: int = -1, gid: int = -1) -> None:
    """An Xauthority file readable by its owner only, holding the seat's cookie for `display`."""
    path.unlink(missing_ok=True)
    path.touch(mode=0o600)
    subprocess.run(
        ["xauth", "-q", "-f", str(path), "add", display, "MIT-MAGIC-COOKIE-1", cookie], check=True, capture_output=True
    )
    os.chown(path, uid, gid)


def _read_display_number(fd: int, process: subprocess.Popen[bytes], runtime_dir: Path) -> int:
    deadline = time.monotonic() + DISPLAY_START_TIMEOUT
    data = b""
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or process.poll() is not None:
            log = (runtime_dir / "xvfb.log").read_text(errors="replace")[-500:]
            raise SeatStartFailed(f"Xvfb did not come up within {DISPLAY_START_TIMEOUT}s: {log}")
        ready, _, _ = select.select([fd], [], [], min(remaining, 0.1))
        if ready:
            chunk = os.read(fd, 16)
            if not chunk:
                continue
            data += chunk
    return int(data)
