"""Creating and removing the Unix accounts seat users run as: useradd/userdel, their files and processes.

All our useradd/userdel calls are serialised through `accounts.lock` (beside the seat owners' lock files),
and a passwd file locked by anyone else is retried with back-off for as long as the caller allows.
Which names to create or remove is the caller's business (`desktop_broker.x11.users`).
"""

import contextlib
import fcntl
import logging
import os
import pwd
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from desktop_broker.x11.errors import SeatUserError

log = logging.getLogger(__name__)
ACCOUNTS_LOCK = Path("/run/sohogw/seat-owners/accounts.lock")
# /tmp/.X11-unix: a seat's Xvfb killed with SIGKILL leaves its socket there, and the sticky directory lets no
# other seat user replace it.
_SHARED_TEMP_DIRS = (Path("/tmp"), Path("/tmp/.X11-unix"), Path("/var/tmp"), Path("/dev/shm"))  # noqa: S108 - only cleaned
_USERDEL_NO_SUCH_USER = 6
SEAT_UIDS = range(70_000, 100_000)
"""The uids (and gids) seat users get, and nobody else may: the seats' nftables output chain refuses every uid
of this range that has no allow-list of its own (`egress`). Above Debian's UID_MAX (60000) and its reserved
60000-64999, below the first subordinate uid `useradd` hands out (SUB_UID_MIN 100000), so neither ordinary
accounts nor user namespaces' ranges land in it."""


def create_account(name: str, home: Path, comment: str, retry_seconds: float) -> pwd.struct_passwd:
    """Add the user (own group, no login shell) and give it an empty home only it can enter."""
    with accounts_locked():
        _run_account_tool(
            [
                "useradd",
                "--no-create-home",
                "--home-dir",
                str(home),
                "--shell",
                "/usr/sbin/nologin",
                "--user-group",
                *(f"--key={key}_MIN={SEAT_UIDS.start}" for key in ("UID", "GID")),
                *(f"--key={key}_MAX={SEAT_UIDS.stop - 1}" for key in ("UID", "GID")),
                "--comment",
                comment,
                name,
            ],
            retry_seconds,
        )
    entry = pwd.getpwnam(name)
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(mode=0o700, parents=True)
    os.chown(home, entry.pw_uid, entry.pw_gid)
    return entry


def remove_account(name: str, uid: int, home: Path | None, retry_seconds: float) -> None:
    """Kill the user's processes, delete its temp files and home, drop the account.

    Left alone when `name` no longer has `uid`: the user is gone, and a newer one may now hold the uid.
    """
    with accounts_locked():
        if _uid_of(name) != uid:
            return
        _kill_processes_of(uid)
        _remove_temp_files_of(uid)
        if home is not None:
            shutil.rmtree(home, ignore_errors=True)
        _run_account_tool(["userdel", name], retry_seconds, gone_code=_USERDEL_NO_SUCH_USER)


def processes_of(uid: int) -> list[int]:
    """Ids of the processes `uid` still runs, read from /proc.

    Zombies are left out: they run nothing, cannot be killed, do not stop `userdel`, and stay until their
    parent (or an init that reaps, which a container's PID 1 may not be) collects them.
    """
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid and not _is_zombie(entry):
                    pids.append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError):
                continue
    return pids


def _is_zombie(proc_entry: Path) -> bool:
    stat = (proc_entry / "stat").read_text()
    return stat[stat.rindex(")") + 2] == "Z"  # the state follows the parenthesised command name


@contextlib.contextmanager
def accounts_locked() -> Iterator[None]:
    """One useradd/userdel at a time across every broker process (and thread) on the machine.

    Also held by `egress.remove_stale_egress`, so no uid is handed out between its check and its deletion.
    Not re-entrant: each call locks its own descriptor.
    """
    ACCOUNTS_LOCK.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(ACCOUNTS_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _run_account_tool(argv: list[str], retry_seconds: float, gone_code: int | None = None) -> None:
    """Run useradd/userdel; while another program holds /etc/passwd (or group, shadow) locked, retry.

    shadow-utils fail at once with "cannot lock /etc/passwd; try again later." when, e.g., an admin's
    useradd holds it. Back-off doubles from 50 ms up to 1 s, with jitter, for `retry_seconds`.
    """
    deadline = time.monotonic() + retry_seconds
    pause = 0.05
    while True:
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode == 0 or result.returncode == gone_code:
            return
        locked = "cannot lock" in result.stderr
        if not locked or time.monotonic() + pause > deadline:
            hint = " (still locked by another program; see `ls /etc/*.lock`)" if locked else ""
            failed = f"{' '.join(argv)} failed ({result.returncode})"
            raise SeatUserError(f"{failed}{hint}: {result.stderr.strip()}")
        log.warning("%s: account files locked by another program; retrying in %.2f s", argv[0], pause)
        time.sleep(pause * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not a secret
        pause = min(pause * 2, 1.0)


def _kill_processes_of(uid: int, wait_seconds: float = 3.0) -> None:
    """SIGKILL everything the seat user runs (the app may have forked helpers that outlive it).

    Waits until they are gone, because `userdel` refuses a user that still owns a process.
    """
    deadline = time.monotonic() + wait_seconds
    while pids := processes_of(uid):
        if time.monotonic() > deadline:
            raise SeatUserError(f"processes {pids} of uid {uid} survived SIGKILL; check for a stuck mount")
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
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
