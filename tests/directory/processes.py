"""Starting a daemon as its own process group and stopping the whole group, even if it forked."""

import os
import signal
import subprocess
from pathlib import Path


def start_process_group(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Start `argv` in a new session (its own process group), output to `log`."""
    with log.open("wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop_process_group(process: subprocess.Popen[bytes], grace_seconds: float = 10) -> None:
    """SIGTERM the group, then SIGKILL it if it has not gone after `grace_seconds`."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace_seconds)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=grace_seconds)
    try:
        os.killpg(process.pid, signal.SIGKILL)  # children left behind by a leader that exited
    except ProcessLookupError:
        return
