"""The seat's virtual X display: an Xvfb with a private cookie, no TCP and no OpenGL.

Xvfb picks its own free display number (`-displayfd`), so seats started at the same time never race
for one. Only holders of the seat's MIT-MAGIC-COOKIE-1 may connect: x11vnc, the watermark, the app.
Xvfb runs as the seat's user inside the seat's cgroup (`preexec`), reading its cookie from a file in the
seat user's private directory.
"""

import os
import secrets
import select
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from desktop_broker.x11.errors import SeatStartFailed
from desktop_broker.x11.processes import open_log
from desktop_broker.x11.spec import Geometry
from desktop_broker.x11.xauthority import write_cookie

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


def start_display(
    geometry: Geometry,
    runtime_dir: Path,
    private_dir: Path,
    owner: tuple[int, int] = (-1, -1),
    preexec: Callable[[], None] | None = None,
) -> XDisplay:
    """Start Xvfb and return once it accepts connections (it writes its number only when ready).

    `private_dir` is the seat user's (`owner`) own directory, where its cookie file goes; logs stay in the
    broker's `runtime_dir`.
    """
    cookie = secrets.token_hex(16)
    server_auth = private_dir / "server.xauth"
    write_cookie(server_auth, None, cookie, *owner)
    read_end, write_end = os.pipe()
    log = open_log(runtime_dir / "xvfb.log")
    argv = [
        "Xvfb",
        "-displayfd",
        str(write_end),
        "-screen",
        "0",
        str(geometry),
        "-nolisten",
        "tcp",
        "-nolisten",
        "local",  # no abstract socket: seat processes may not reach abstract sockets (`landlock_domain`)
        "-auth",
        str(server_auth),
        "-extension",
        "GLX",
        "-noreset",
    ]
    try:
        process = subprocess.Popen(
            argv,
            pass_fds=(write_end,),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            preexec_fn=preexec,  # system calls only (cgroups.CgroupEntry)
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
