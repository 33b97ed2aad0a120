"""Real dependencies for the operator's commands: a CA on disk, guacd, an SMTP server, and a way to run ``sohogw``
as an operator does (a subprocess with its own environment)."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from certs.authority import init_authority
from tests.directory.processes import start_process_group, stop_process_group
from tests.support.server import free_port

GUACD = Path("/opt/guacd/sbin/guacd")
PASSPHRASE = "correct-horse-battery-staple-2026"
SOHOGW = Path(sys.executable).parent / "sohogw"


def clean_environment() -> dict[str, str]:
    """This process's environment without any SOHOGW_* setting."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SOHOGW_")}


def run_sohogw(
    *args: str, env: dict[str, str], timeout: float = 120, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``sohogw ARGS`` in a child process whose SOHOGW_* come only from ``env`` (nothing leaks from the run)."""
    return subprocess.run(
        [str(SOHOGW), *args],
        env=clean_environment() | env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data directory with a CA made the way `sohogw ca init` makes it, and its passphrase file (0600)."""
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    init_authority(data / "ca", PASSPHRASE, "Corp Example", datetime.now(UTC))
    passphrase = data / "ca-passphrase"
    passphrase.write_text(PASSPHRASE)
    passphrase.chmod(0o600)
    return data


@pytest.fixture
def guacd(tmp_path: Path) -> Iterator[str]:
    """The real guacd (built from deploy's guacamole-server source by /work/shared/guacd/build.sh) on loopback."""
    if not GUACD.exists():
        pytest.fail(f"{GUACD} is missing: build it with ../shared/guacd/build.sh")
    port = free_port()
    process = start_process_group(
        [str(GUACD), "-f", "-b", "127.0.0.1", "-l", str(port), "-L", "error"], tmp_path / "guacd.log"
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("guacd did not listen") from None
            time.sleep(0.05)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        stop_process_group(process)


class _Accept:
    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        return "250 accepted"


@pytest.fixture
def smtp_server() -> Iterator[str]:
    """A real SMTP server (aiosmtpd) on loopback."""
    port = free_port()
    controller = Controller(_Accept(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        controller.stop()
