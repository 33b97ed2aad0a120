"""Each seat's own Unix user and home, so one agent's app can never read another's files.

The published application runs as this user, never as root. Several broker processes may share one
machine (two nodes in a lab, a test run beside a gateway, a restart while the old process still stops
its seats), so every process claims an *instance*: a random id held by an flock on
`/run/sohogw/seat-owners/<id>.lock`. Seat users are named `sohoseat-<id>-<n>` (n counts up, never reused)
and a process only ever removes its own users or those of an instance whose lock nobody holds any more
(the kernel drops an flock when its process dies, however it dies). The accounts themselves are made and
removed by `desktop_broker.x11.unix_accounts`.
"""

import atexit
import contextlib
import fcntl
import itertools
import logging
import os
import pwd
import re
import secrets
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from desktop_broker.x11 import cgroups, egress
from desktop_broker.x11.shared_memory import remove_segments_of
from desktop_broker.x11.unix_accounts import (
    ACCOUNTS_LOCK,
    accounts_locked,
    create_account,
    processes_of,
    remove_account,
)

__all__ = [
    "ACCOUNT_RETRY_SECONDS",
    "OWNERS_DIR",
    "SEAT_USER_PREFIX",
    "SeatUser",
    "SeatUserOwner",
    "end_earlier_lives",
    "processes_of",
    "provide_seat_user",
    "reap_stale_seat_users",
    "remove_orphaned_feed_dirs",
    "remove_seat_user",
    "seat_user_owner",
]

log = logging.getLogger(__name__)
SEAT_USER_PREFIX = "sohoseat-"
OWNERS_DIR = ACCOUNTS_LOCK.parent
ACCOUNT_RETRY_SECONDS = 10.0
"""How long a useradd/userdel keeps retrying while another process holds the passwd/group/shadow lock."""
_SEAT_USER_NAME = re.compile(rf"^{SEAT_USER_PREFIX}(?P<instance>[0-9a-f]{{8}})-(?P<serial>\d+)$")


@dataclass(frozen=True, slots=True)
class SeatUser:
    """The account the published application runs as; `created` is False when not running as root."""

    name: str
    uid: int
    gid: int
    home: Path
    created: bool
    instance_id: str = ""
    """The broker instance that made the user (its cgroups live under that id); empty when not created."""


@dataclass(slots=True)
class SeatUserOwner:
    """One process's claim on the seat user names `sohoseat-<instance_id>-<n>`; alive while `lock` is held."""

    instance_id: str
    lock: int
    pid: int = field(default_factory=os.getpid)
    _serials: Iterator[int] = field(default_factory=itertools.count)
    unreported: list[str] = field(default_factory=list)
    """Seat users of dead instances removed when this one was claimed, until `end_earlier_lives` reports them."""

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
        _remove_instance(self.instance_id)
        if os.geteuid() == 0:
            egress.remove_stale_egress(_is_seat_user)
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
            _owner.unreported = reap_stale_seat_users()
        return _owner


def end_earlier_lives(feed_root: Path | None = None) -> list[str]:
    """As a broker starts (as root): claim its instance and end every seat a dead broker left behind.

    Returns the seat users removed. A `kill -9`ed gateway's seats keep running (reparented to init); their
    cgroups say exactly which processes were theirs (see `reap_stale_seat_users`). Their call-state folders in
    `feed_root` go too (`remove_orphaned_feed_dirs`).
    """
    if os.geteuid() != 0:
        return []
    owner = seat_user_owner()
    with _owner_guard:
        ended, owner.unreported = owner.unreported, []
    ended += reap_stale_seat_users()
    if feed_root is not None:
        for folder in remove_orphaned_feed_dirs(feed_root):
            log.warning("removed call-state folder %s, left by a seat that is gone", folder)
    return ended


def remove_orphaned_feed_dirs(root: Path) -> list[Path]:
    """Remove the folders under `root` whose group no seat user holds, and return them (`feed_dir`).

    Under `accounts.lock`, so no broker hands such a group id to a new seat user between the check and the removal;
    a folder whose gid a new seat user already holds is removed when that user's own folder is made.
    """
    if not root.is_dir():
        return []
    with accounts_locked():
        seat_groups = {entry.pw_gid for entry in pwd.getpwall() if entry.pw_name.startswith(SEAT_USER_PREFIX)}
        orphaned = [
            folder for folder in root.iterdir() if _is_folder(folder) and folder.stat().st_gid not in seat_groups
        ]
        for folder in orphaned:
            shutil.rmtree(folder)
    return orphaned


def _is_folder(path: Path) -> bool:
    return stat.S_ISDIR(path.lstat().st_mode)


def provide_seat_user(homes_root: Path, owner: SeatUserOwner | None = None) -> SeatUser:
    """Create a new seat user with an empty home; as non-root, use the current user with a fresh home.

    The name never repeats (see `SeatUserOwner`); the seat's display is not known yet, since Xvfb runs as
    this user and picks its display number itself.
    """
    if os.geteuid() != 0:
        homes_root.mkdir(parents=True, exist_ok=True)
        home = Path(tempfile.mkdtemp(prefix=SEAT_USER_PREFIX, dir=homes_root))
        me = pwd.getpwuid(os.getuid())
        return SeatUser(me.pw_name, me.pw_uid, me.pw_gid, home, created=False)
    instance = owner or seat_user_owner()
    name = instance.next_name()
    home = homes_root / name
    entry = create_account(name, home, "sohogw kiosk seat", ACCOUNT_RETRY_SECONDS)
    return SeatUser(name, entry.pw_uid, entry.pw_gid, home, created=True, instance_id=instance.instance_id)


def remove_seat_user(user: SeatUser) -> None:
    """Kill what the user still runs, delete every file it owns in the usual places, drop the account.

    Idempotent: a user already gone is left alone, and so is its uid, which a newer seat may now hold.
    """
    if user.created:
        remove_account(user.name, user.uid, user.home, ACCOUNT_RETRY_SECONDS)
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
    if os.geteuid() == 0:
        instances |= cgroups.instance_ids()
    reaped: list[str] = []
    for instance_id in sorted(instances):
        with _lock_of_dead_instance(instance_id) as dead:
            if dead:
                reaped += _remove_instance(instance_id)
    if os.geteuid() == 0:
        egress.remove_stale_egress(_is_seat_user)
    return reaped


def _is_seat_user(uid: int) -> bool:
    try:
        return pwd.getpwuid(uid).pw_name.startswith(SEAT_USER_PREFIX)
    except KeyError:
        return False


def _remove_instance(instance_id: str) -> list[str]:
    """Everything a dead instance left: its seats' processes (exactly, by cgroup), then their users (with
    any process a cgroup did not hold, e.g. one from before cgroups); their network rules go with the next
    `remove_stale_egress`."""
    if os.geteuid() == 0:
        for seat in cgroups.remove_instance(instance_id):
            log.warning("ended the processes of seat %s, left by a broker that is gone", seat.name)
    return _remove_users_of(instance_id)


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
            remove_segments_of(entry.pw_uid)
            remove_account(
                entry.pw_name, entry.pw_uid, home if home.name == entry.pw_name else None, ACCOUNT_RETRY_SECONDS
            )
            removed.append(entry.pw_name)
    return removed
