"""Each seat's own Unix user and home, so one agent's app can never read another's files.

The published application runs as this user, never as root. Recycling a seat wipes the home and every
file the user left in the shared temporary directories, then kills whatever the user still runs.
"""

import os
import pwd
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from desktop_broker.x11.errors import SeatUserError

SEAT_USER_PREFIX = "sohoseat-"
_SHARED_TEMP_DIRS = (Path("/tmp"), Path("/var/tmp"), Path("/dev/shm"))  # noqa: S108 - only cleaned, never written


@dataclass(frozen=True, slots=True)
class SeatUser:
    """The account the published application runs as; `created` is False when not running as root."""

    name: str
    uid: int
    gid: int
    home: Path
    created: bool


def provide_seat_user(seat_number: int, homes_root: Path) -> SeatUser:
    """Create (or recycle) the seat's user with an empty home; as non-root, use the current user."""
    home = homes_root / f"{SEAT_USER_PREFIX}{seat_number}"
    if os.geteuid() != 0:
        _fresh_dir(home, os.getuid(), os.getgid())
        me = pwd.getpwuid(os.getuid())
        return SeatUser(me.pw_name, me.pw_uid, me.pw_gid, home, created=False)
    name = f"{SEAT_USER_PREFIX}{seat_number}"
    try:
        existing = pwd.getpwnam(name)
    except KeyError:
        _run(
            [
                "useradd",
                "--no-create-home",
                "--home-dir",
                str(home),
                "--shell",
                "/usr/sbin/nologin",
                "--user-group",
                "--comment",
                "sohogw kiosk seat",
                name,
            ]
        )
    else:
        _kill_processes_of(existing.pw_uid)
        _remove_temp_files_of(existing.pw_uid)
    entry = pwd.getpwnam(name)
    _fresh_dir(home, entry.pw_uid, entry.pw_gid)
    return SeatUser(name, entry.pw_uid, entry.pw_gid, home, created=True)


def remove_seat_user(user: SeatUser) -> None:
    """Kill what the user still runs, delete every file it owns in the usual places, drop the account.

    Idempotent: a user already gone is left alone, and so is its uid, which a newer seat may now hold.
    """
    if user.created and _uid_of(user.name) == user.uid:
        _kill_processes_of(user.uid)
        _remove_temp_files_of(user.uid)
        shutil.rmtree(user.home, ignore_errors=True)
        _run(["userdel", user.name])
    elif not user.created:
        shutil.rmtree(user.home, ignore_errors=True)


def processes_of(uid: int) -> list[int]:
    """Process ids owned by `uid` (real uid), read from /proc."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    pids.append(int(entry.name))
            except FileNotFoundError:
                continue
    return pids


def _kill_processes_of(uid: int, wait_seconds: float = 3.0) -> None:
    """SIGKILL everything the seat user runs (the app may have forked helpers that outlive it).

    Waits until they are gone, because `userdel` refuses a user that still owns a process.
    """
    deadline = time.monotonic() + wait_seconds
    while pids := processes_of(uid):
        if time.monotonic() > deadline:
            raise SeatUserError(f"processes {pids} of uid {uid} survived SIGKILL; check for a stuck mount")
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
        time.sleep(0.02)


def _remove_temp_files_of(uid: int) -> None:
    for directory in _SHARED_TEMP_DIRS:
        if not directory.is_dir():
            continue
        for entry in directory.iterdir():
            try:
                if entry.lstat().st_uid != uid:
                    continue
            except FileNotFoundError:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def _uid_of(name: str) -> int | None:
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return None


def _fresh_dir(path: Path, uid: int, gid: int) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(mode=0o700, parents=True)
    os.chown(path, uid, gid)


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SeatUserError(f"{argv[0]} failed ({result.returncode}): {result.stderr.strip()}")
