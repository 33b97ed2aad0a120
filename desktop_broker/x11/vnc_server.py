"""The seat's x11vnc: loopback only, hardened, clipboard as the display rules say.

Flags and their reasons are in `spec.HARDENING_FLAGS`, `spec.clipboard_flags` and docs/seats.md.
"""

import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from desktop_broker.x11.errors import SeatStartFailed
from desktop_broker.x11.processes import open_log, stop_process
from desktop_broker.x11.spec import HARDENING_FLAGS, MEMORY_FLAGS, SeatSpec, clipboard_flags

X11VNC_START_TIMEOUT = 10.0
# Without a window manager x11vnc waits 45 s after a viewer connects before it creates its selection
# window (xevents.c guess_dm_gone, a guard for GDM greeters), so clipboard rules would only take effect
# then. "never" skips the guess: a kiosk seat has no display manager.
_X11VNC_ENV = {"X11VNC_AVOID_WINDOWS": "never"}
_PORT_LINE = re.compile(rb"^PORT=(\d+)\s*$", re.MULTILINE)


def start_x11vnc(
    spec: SeatSpec,
    x_env: dict[str, str],
    base_env: dict[str, str],
    runtime_dir: Path,
    private_dir: Path,
    owner: tuple[int, int] = (-1, -1),
    preexec: Callable[[], None] | None = None,
) -> tuple[subprocess.Popen[bytes], int]:
    """Start x11vnc on a free loopback port and read the port it chose from its `PORT=` line.

    It runs as the seat user (`owner`, made so by `preexec`); the passwords file is that user's, in its
    private directory, and x11vnc deletes it (`rm:`) as soon as it has read it, before the app starts.
    Its log goes to stderr, into a file the broker opened in `runtime_dir`.
    """
    passwd_file = private_dir / "vnc.passwd"
    fd = os.open(passwd_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, spec.passwords.passwd_file_text().encode())
        os.fchown(fd, *owner)
    finally:
        os.close(fd)
    argv = [
        "x11vnc",
        "-display",
        x_env["DISPLAY"],
        "-auth",
        x_env["XAUTHORITY"],
        "-autoport",
        "5900",
        "-passwdfile",
        f"rm:{passwd_file}",
        "-desktop",
        "SOHO seat",
        *HARDENING_FLAGS,
        *MEMORY_FLAGS,
        *clipboard_flags(spec.rules),
    ]
    # x11vnc prints its chosen port on stdout only; a file (not a pipe) cannot fill up and block it later.
    port_file = runtime_dir / "x11vnc.stdout"
    with open_log(port_file) as stdout, open_log(runtime_dir / "x11vnc.log") as log:
        process = subprocess.Popen(
            argv,
            env={**base_env, **x_env, **_X11VNC_ENV},
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=log,
            start_new_session=True,
            preexec_fn=preexec,  # system calls only (cgroups.CgroupEntry)
        )
    deadline = time.monotonic() + X11VNC_START_TIMEOUT
    while (match := _PORT_LINE.search(port_file.read_bytes())) is None:
        if time.monotonic() > deadline or process.poll() is not None:
            stop_process(process)
            tail = (runtime_dir / "x11vnc.log").read_text(errors="replace")[-800:]
            raise SeatStartFailed(f"x11vnc did not listen within {X11VNC_START_TIMEOUT}s: {tail}")
        time.sleep(0.005)
    return process, int(match.group(1))
