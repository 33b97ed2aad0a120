"""Stopping a seat's processes for sure, measuring what they cost, and the log files they write to."""

import os
import subprocess
from pathlib import Path
from typing import BinaryIO

DEFAULT_GRACE_SECONDS = 1.0


def stop_process(process: subprocess.Popen[bytes], grace_seconds: float = DEFAULT_GRACE_SECONDS) -> None:
    """SIGTERM, then SIGKILL after `grace_seconds`.

    x11vnc can deadlock on SIGTERM right after a client leaves, so the SIGKILL fallback is not optional.
    The broker's ends of its pipes, if it has any (the watermark's), are closed with it.
    """
    try:
        if process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    finally:
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                pipe.close()


def pss_kib(pid: int) -> int:
    """Proportional set size of one process in KiB (shared pages split among their users)."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    raise ValueError(f"no Pss line in /proc/{pid}/smaps_rollup")


def open_log(path: Path) -> BinaryIO:
    """A seat part's log (its stdout/stderr), truncated, root's alone: 0600, never through a link.

    The seat's runtime folder is 0711 and its name is public (x11vnc's argv names the passwords file in it), and a
    log holds whatever the app prints (review finding F6): the process umask would have made it 0644. The part
    writes to the descriptor it inherits, so it needs no access to the file itself.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    os.fchmod(fd, 0o600)  # a file left at this path keeps no wider mode it might have had
    return os.fdopen(fd, "wb")
