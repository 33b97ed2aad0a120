"""Each seat's own Unix user and home, so one agent's app can never read another's files.

The published application runs as this user, never as root. Several broker processes may share one
machine (two nodes in a lab, a test run beside a gateway, a restart while the old process still stops
its seats), so every process claims an *instance*: a random id held by an flock on
`/run/sohogw/seat-owners/<id>.lock`. Seat users are named `sohoseat-<id>-<n>` (n counts up, never reused)
and a process only ever removes its own users or those of an instance whose lock nobody holds any more
(the kernel drops an flock when its process dies, however it dies). All our useradd/userdel calls are
serialised through `accounts.lock`, and a passwd file locked by anyone else is retried with back-off.
"""

import atexit
import contextlib
import fcntl
import itertools
import logging
import os
import pwd
import random
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from desktop_broker.x11.errors import SeatUserError

log = logging.getLogger(__name__)
SEAT_USER_PREFIX = "sohoseat-"
OWNERS_DIR = Path("/run/sohogw/seat-owners")
ACCOUNT_RETRY_SECONDS = 10.0
"""How long a useradd/userdel keeps retrying while another process holds the passwd/group/shadow lock."""
_SEAT_USER_NAME = re.compile(rf"^{SEAT_USER_PREFIX}(?P<instance>[0-9a-f]{{8}})-(?P<serial>\d+)$")
_SHARED_TEMP_DIRS = (Path("/tmp"), Path("/var/tmp"), Path("/dev/shm"))  # noqa: S108 - only cleaned, never written
_USERDEL_NO_SUCH_USER = 6


@dataclass(frozen=True, slots=True)
class SeatUser:
    """The account the published application runs as; `created` is False when not running as root."""

    name: str
    uid: int
    gid: int
    home: Path
    created: bool


@dataclass(slots=True)
class SeatUserOwner:
    """One process's claim on the seat user names `sohoseat-<instance_id>-<n>`; alive while `lock` is held."""

    instance_id: str
    lock: int
    pid: int = field(default_factory=os.getpid)
    _serials: Iterator[int] = field(default_factory=itertools.count)

    @classmethod
    def claim(cls) -> "SeatUserOwner":
        """A fresh instance id whose lock file appears already locked, so no reaper can judge it dead."""
        OWNERS_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        while True:
            fd, staged = tempfile.mkstemp(prefix=".claim-", dir=OWNERS_DIR)
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, f"{os.getpid()}\n".encode())
            instance_id = secrets.token_hex(4)
            try:
                os.link(staged, OWNERS_DIR / f"{instance_id}.lock")
            except FileExistsError:
                os.close(fd)
                continue
            finally:
                os.unlink(staged)
            return cls(instance_id, fd)

    def next_name(self) -> str:
        return f"{SEAT_USER_PREFIX}{self.instance_id}-{next(self._serials)}"

    def release(self) -> None:
        """Remove the users this instance still has (seats not stopped), then give up the id."""
        if self.pid != os.getpid():  # a forked child inherited the object, not the claim
            return
        _remove_users_of(self.instance_id)
        (OWNERS_DIR / f"{self.instance_id}.lock").unlink(missing_ok=True)
        os.close(self.lock)


_owner: SeatUserOwner | None = None
_owner_guard = threading.Lock()


def seat_user_owner() -> SeatUserOwner:
    """This process's instance, claimed on first use (and again after a fork); stale users are reaped then."""
    global _owner
    with _owner_guard:
        if _owner is None or _owner.pid != os.getpid():
            _owner = SeatUserOwner.claim()
            atexit.register(_owner.release)
            reap_stale_seat_users()
        return _owner


def provide_seat_user(seat_number: int, homes_root: Path, owner: SeatUserOwner | None = None) -> SeatUser:
    """Create a new seat user with an empty home; as non-root, use the current user with a fresh home.

    `seat_number` (the display) goes into the account's comment for operators; the name never repeats.
    """
    if os.geteuid() != 0:
        homes_root.mkdir(parents=True, exist_ok=True)
        home = Path(tempfile.mkdtemp(prefix=SEAT_USER_PREFIX, dir=homes_root))
        me = pwd.getpwuid(os.getuid())
        return SeatUser(me.pw_name, me.pw_uid, me.pw_gid, home, created=False)
    name = (owner or seat_user_owner()).next_name()
    home = homes_root / name
    with _accounts_locked():
        _run_account_tool(
            [
                "useradd",
                "--no-create-home",
                "--home-dir",
                str(home),
                "--shell",
                "/usr/sbin/nologin",
                "--user-group",
                "--comment",
                f"sohogw kiosk seat on display {seat_number}",
                name,
            ]
        )
    entry = pwd.getpwnam(name)
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(mode=0o700, parents=True)
    os.chown(home, entry.pw_uid, entry.pw_gid)
    return SeatUser(name, entry.pw_uid, entry.pw_gid, home, created=True)


def remove_seat_user(user: SeatUser) -> None:
    """Kill what the user still runs, delete every file it owns in the usual places, drop the account.

    Idempotent: a user already gone is left alone, and so is its uid, which a newer seat may now hold.
    """
    if user.created:
        _remove_account(user.name, user.uid, user.home)
    else:
        shutil.rmtree(user.home, ignore_errors=True)


def reap_stale_seat_users() -> list[str]:
    """Remove the seat users of instances whose process is gone; returns their names.

    A live instance's users are never touched: its lock cannot be taken. Names without an instance id
    (older brokers' `sohoseat-N`) are left alone, since nothing tells whether their owner still runs.
    """
    instances = {m["instance"] for e in pwd.getpwall() if (m := _SEAT_USER_NAME.match(e.pw_name))}
    if OWNERS_DIR.is_dir():
        instances |= {p.stem for p in OWNERS_DIR.glob("*.lock") if re.fullmatch("[0-9a-f]{8}", p.stem)}
    reaped: list[str] = []
    for instance_id in sorted(instances):
        with _lock_of_dead_instance(instance_id) as dead:
            if dead:
                reaped += _remove_users_of(instance_id)
    return reaped


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
def _lock_of_dead_instance(instance_id: str) -> Iterator[bool]:
    """Yields True (holding its lock, removed on exit) when no process holds the instance's lock."""
    path = OWNERS_DIR / f"{instance_id}.lock"
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        yield True  # no lock file at all: its owner is gone (or /run was emptied by a reboot)
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        yield False
        return
    try:
        yield True
        path.unlink(missing_ok=True)
    finally:
        os.close(fd)


def _remove_users_of(instance_id: str) -> list[str]:
    removed = []
    for entry in pwd.getpwall():
        match = _SEAT_USER_NAME.match(entry.pw_name)
        if match and match["instance"] == instance_id:
            home = Path(entry.pw_dir)
            _remove_account(entry.pw_name, entry.pw_uid, home if home.name == entry.pw_name else None)
            removed.append(entry.pw_name)
    return removed


def _remove_account(name: str, uid: int, home: Path | None) -> None:
    with _accounts_locked():
        if _uid_of(name) != uid:
            return
        _kill_processes_of(uid)
        _remove_temp_files_of(uid)
        if home is not None:
            shutil.rmtree(home, ignore_errors=True)
        _run_account_tool(["userdel", name], gone_code=_USERDEL_NO_SUCH_USER)


@contextlib.contextmanager
def _accounts_locked() -> Iterator[None]:
    """One useradd/userdel at a time across every broker process (and thread) on the machine."""
    OWNERS_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(OWNERS_DIR / "accounts.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _run_account_tool(argv: list[str], gone_code: int | None = None) -> None:
    """Run useradd/userdel; while another program holds /etc/passwd (or group, shadow) locked, retry.

    shadow-utils fail at once with "cannot lock /etc/passwd; try again later." when, e.g., an admin's
    useradd holds it. Back-off doubles from 50 ms up to 1 s, with jitter, for `ACCOUNT_RETRY_SECONDS`.
    """
    deadline = time.monotonic() + ACCOUNT_RETRY_SECONDS
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
