"""Seat users when several broker processes share one machine: real useradd/userdel, real locks.

A second broker instance runs as a real second Python process; "apps" are `sleep` processes running as
the seat users. Nothing here needs a display.
"""

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from desktop_broker.x11 import SeatUserError, users
from desktop_broker.x11.users import (
    OWNERS_DIR,
    SeatUser,
    SeatUserOwner,
    processes_of,
    provide_seat_user,
    reap_stale_seat_users,
    remove_seat_user,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PASSWD_LOCK = Path("/etc/passwd.lock")
OTHER_BROKER = """
import json, sys
from pathlib import Path
from desktop_broker.x11.users import provide_seat_user, remove_seat_user, seat_user_owner
homes, keep, churn = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
owner = seat_user_owner()
kept = [provide_seat_user(homes) for _ in range(keep)]
print(json.dumps({"instance": owner.instance_id, "users": [[u.name, u.uid, u.gid] for u in kept]}), flush=True)
for _ in range(churn):
    remove_seat_user(provide_seat_user(homes))
print("churned", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def homes() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="sohogw-users-", dir="/var/tmp"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def owner() -> Iterator[SeatUserOwner]:
    claimed = SeatUserOwner.claim()
    try:
        yield claimed
    finally:
        claimed.release()


@contextmanager
def other_broker(homes: Path, keep: int, churn: int = 0) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any]]]:
    """A second broker instance in its own process; it cleans up when its stdin closes, else it is killed."""
    process = subprocess.Popen(
        [sys.executable, "-c", OTHER_BROKER, str(homes), str(keep), str(churn)],
        cwd=PROJECT_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line, f"the other broker exited early with code {process.wait(timeout=10)}"
        yield process, json.loads(line)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        reap_stale_seat_users()


@contextmanager
def apps_running_as(accounts: list[list[Any]]) -> Iterator[list[subprocess.Popen[bytes]]]:
    """One long-running process per [name, uid, gid]: stands in for each seat's published application."""
    apps = [subprocess.Popen(["sleep", "300"], user=uid, group=gid, extra_groups=[]) for _, uid, gid in accounts]
    try:
        yield apps
    finally:
        for app in apps:
            app.kill()
            app.wait()


@contextmanager
def passwd_file_locked(seconds: float) -> Iterator[None]:
    """Hold /etc/passwd.lock as a running useradd does (the file names a live pid), free it after `seconds`.

    Meanwhile shadow-utils' useradd/userdel fail at once: "cannot lock /etc/passwd; try again later."
    """
    holder = subprocess.Popen(["sleep", "60"])
    timer = threading.Timer(seconds, lambda: PASSWD_LOCK.unlink(missing_ok=True))
    try:
        PASSWD_LOCK.write_text(str(holder.pid))
        timer.start()
        yield
    finally:
        timer.cancel()
        PASSWD_LOCK.unlink(missing_ok=True)
        holder.kill()
        holder.wait()


def exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def test_seat_user_names_carry_the_instance_fit_linux_and_never_repeat(owner: SeatUserOwner, homes: Path) -> None:
    first, second = provide_seat_user(homes, owner), provide_seat_user(homes, owner)
    try:
        assert first.name == f"sohoseat-{owner.instance_id}-0"
        assert second.name == f"sohoseat-{owner.instance_id}-1"
        assert len(first.name) <= 32
        assert pwd.getpwnam(first.name).pw_gecos == "sohogw kiosk seat"
        assert (OWNERS_DIR / f"{owner.instance_id}.lock").read_text().strip() == str(os.getpid())
        assert oct(first.home.stat().st_mode & 0o777) == "0o700"
    finally:
        remove_seat_user(first)
        remove_seat_user(second)
    assert not exists(first.name) and not first.home.exists()


def test_another_live_broker_keeps_its_users_and_apps_while_we_churn_and_reap(
    owner: SeatUserOwner, homes: Path
) -> None:
    with other_broker(homes, keep=2, churn=6) as (process, other), apps_running_as(other["users"]) as apps:

        def churn(_: int) -> str:
            user = provide_seat_user(homes, owner)
            remove_seat_user(user)
            return user.name

        with ThreadPoolExecutor(3) as threads:
            ours = list(threads.map(churn, range(9)))
            reaped = reap_stale_seat_users()
        assert process.stdout is not None and process.stdout.readline().strip() == "churned"

        assert len(set(ours)) == 9 and not any(exists(name) for name in ours)
        assert not any(name.startswith(f"sohoseat-{other['instance']}") for name in reaped)
        for (name, uid, _), app in zip(other["users"], apps, strict=True):
            assert pwd.getpwnam(name).pw_uid == uid
            assert app.poll() is None, f"{name}'s app was killed by another broker instance"
        assert process.stdin is not None
        process.stdin.close()  # the other broker exits normally and removes its own users
        assert process.wait(timeout=20) == 0
        assert not any(exists(name) for name, _, _ in other["users"])
        assert all(app.wait(timeout=5) == -signal.SIGKILL for app in apps)


def test_users_of_a_dead_broker_are_reaped_with_their_apps_homes_and_temp_files(homes: Path) -> None:
    with other_broker(homes, keep=2) as (process, other), apps_running_as(other["users"]) as apps:
        scratch = [Path(f"/tmp/{name}-scratch") for name, _, _ in other["users"]]
        for path, (_, uid, gid) in zip(scratch, other["users"], strict=True):
            path.touch()
            os.chown(path, uid, gid)
        process.kill()  # crash: no clean-up runs; the kernel drops its flock
        process.wait()

        reaped = reap_stale_seat_users()

        assert sorted(reaped) == sorted(name for name, _, _ in other["users"])
        assert not any(exists(name) for name in reaped)
        assert all(app.wait(timeout=5) == -signal.SIGKILL for app in apps)
        assert not any(path.exists() for path in scratch)
        assert not any((homes / name).exists() for name in reaped)
        assert not (OWNERS_DIR / f"{other['instance']}.lock").exists()


def test_passwd_file_locked_by_another_program_is_waited_out(
    owner: SeatUserOwner, homes: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with passwd_file_locked(0.6):
        user = provide_seat_user(homes, owner)
    assert exists(user.name)
    with passwd_file_locked(0.6):
        remove_seat_user(user)
    assert not exists(user.name)
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert {r.getMessage().split(":")[0] for r in retries} == {"useradd", "userdel"}


def test_passwd_file_locked_past_the_retry_window_fails_with_a_clear_error(
    owner: SeatUserOwner, homes: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(users, "ACCOUNT_RETRY_SECONDS", 0.3)
    with passwd_file_locked(30), pytest.raises(SeatUserError, match="still locked by another program"):
        provide_seat_user(homes, owner)
    assert not any(e.pw_name.startswith(f"sohoseat-{owner.instance_id}") for e in pwd.getpwall())


def test_lckpwdf_holder_and_a_foreign_useradd_loop_do_not_fail_seat_users(owner: SeatUserOwner, homes: Path) -> None:
    """glibc's lckpwdf (/etc/.pwd.lock) is what shadow-utils take as well; an admin script churns users."""
    hold_pwd_lock = "import ctypes, time; c = ctypes.CDLL('libc.so.6'); assert c.lckpwdf() == 0; time.sleep(1)"
    holder = subprocess.Popen([sys.executable, "-c", hold_pwd_lock])
    stop = threading.Event()

    def foreign_churn() -> None:
        while not stop.is_set():
            subprocess.run(["useradd", "--no-create-home", "sohotest-foreign"], capture_output=True, check=False)
            subprocess.run(["userdel", "sohotest-foreign"], capture_output=True, check=False)

    churner = threading.Thread(target=foreign_churn)
    churner.start()
    made: list[SeatUser] = []
    try:
        for _ in range(8):
            made.append(provide_seat_user(homes, owner))
        for user in made:
            remove_seat_user(user)
    finally:
        stop.set()
        churner.join()
        holder.wait(timeout=10)
        subprocess.run(["userdel", "sohotest-foreign"], capture_output=True, check=False)
    assert holder.returncode == 0
    assert len(made) == 8 and not any(exists(user.name) for user in made)


def test_released_instance_removes_its_leftover_users_and_its_lock(homes: Path) -> None:
    claimed = SeatUserOwner.claim()
    left = provide_seat_user(homes, claimed)
    with apps_running_as([[left.name, left.uid, left.gid]]) as (app,):
        claimed.release()
        assert app.wait(timeout=5) == -signal.SIGKILL
    assert not exists(left.name) and not processes_of(left.uid)
    assert not (OWNERS_DIR / f"{claimed.instance_id}.lock").exists()
