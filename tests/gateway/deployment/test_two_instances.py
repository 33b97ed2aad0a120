"""Two gateways on one host, each with its own data directory and the default seat paths (/var/lib/sohogw/seats,
/run/sohogw/seats, /run/sohogw/seat-calls): each warms its own seat as its own seat user, and stopping one ends its
seats and removes its seat user while the other's seat keeps running (run as root, like a seat-hosting node)."""

import os
import pwd
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from certs.authority import init_authority
from tests.gateway.deployment.conftest import SOHOGW
from tests.support.server import free_port

pytestmark = pytest.mark.e2e
PASSPHRASE = "two-instances-ca-passphrase"


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _seat_users(pid: int) -> set[str]:
    """The seat users running processes below the gateway ``pid`` (the published application runs as one)."""
    users = set()
    for child in _descendants(pid):
        try:
            uid = Path(f"/proc/{child}").stat().st_uid
        except FileNotFoundError:
            continue
        name = pwd.getpwuid(uid).pw_name
        if name.startswith("sohoseat-"):
            users.add(name)
    return users


def _exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True


@contextmanager
def _gateway(folder: Path) -> Iterator[subprocess.Popen[bytes]]:
    data = folder / "data"
    data.mkdir(parents=True, mode=0o700)
    init_authority(data / "ca", PASSPHRASE, "Corp Example", datetime.now(UTC))
    (data / "ca-passphrase").write_text(PASSPHRASE)
    (data / "ca-passphrase").chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOHOGW_")} | {
        "SOHOGW_DATA_DIR": str(data),
        "SOHOGW_CA__PASSPHRASE_FILE": str(data / "ca-passphrase"),
        "SOHOGW_LISTEN_PORT": str(free_port()),
        "SOHOGW_SEATS__WARM_PER_APP": "1",
    }
    with (folder / "serve.log").open("wb") as log:
        process = subprocess.Popen([str(SOHOGW), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)


def _wait_for(what: str, ready, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        time.sleep(0.2)


def test_two_gateways_on_one_host_keep_their_seats_apart(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("seat users are Unix accounts: this test runs as root, as CI does")
    with ExitStack() as stack:
        first = stack.enter_context(_gateway(tmp_path / "first"))
        second = stack.enter_context(_gateway(tmp_path / "second"))
        _wait_for("a warm seat in each gateway", lambda: bool(_seat_users(first.pid)) and bool(_seat_users(second.pid)))
        (first_user,), (second_user,) = _seat_users(first.pid), _seat_users(second.pid)
        assert first_user != second_user
        second_uid = pwd.getpwnam(second_user).pw_uid
        second_app = {p for p in _descendants(second.pid) if Path(f"/proc/{p}").stat().st_uid == second_uid}
        assert second_app

        os.killpg(first.pid, signal.SIGTERM)
        first.wait(timeout=60)
        _wait_for("the first gateway's seat user to go", lambda: not _exists(first_user))
        assert _seat_users(second.pid) == {second_user} and _exists(second_user)
        assert all(Path(f"/proc/{p}").exists() for p in second_app)  # its published application still runs
        assert second.poll() is None
