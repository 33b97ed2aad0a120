"""Stopping a seat's processes for sure, and measuring what they cost."""

import subprocess
from pathlib import Path

DEFAULT_GRACE_SECONDS = 1.0


def stop_process(process: subprocess.Popen[bytes], grace_seconds: float = DEFAULT_GRACE_SECONDS) -> None:
    """SIGTERM, then SIGKILL after `grace_seconds`.

    x11vnc can deadlock on SIGTERM right after a client leaves, so the SIGKILL fallback is not optional.
    """
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def pss_kib(pid: int) -> int:
    """Proportional set size of one process in KiB (shared pages split among their users)."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    raise ValueError(f"no Pss line in /proc/{pid}/smaps_rollup")
