"""A seat's call-state folder is its own user's alone, even after a broker died and `useradd` handed its seat users'
group ids to new seat users (review finding F2). Real seat users (useradd), real files; root only."""

import grp
import json
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop_broker.x11.feed_dir import make_feed_dir
from desktop_broker.x11.unix_accounts import SEAT_UIDS
from desktop_broker.x11.users import SeatUser, end_earlier_lives, provide_seat_user, remove_seat_user

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.geteuid() != 0, reason="seat users need root (useradd)"),
]
LAST_CALLER = {"active": True, "caller": "+8613800000001"}


@pytest.fixture
def root() -> Iterator[Path]:
    made = Path(tempfile.mkdtemp(prefix="sohogw-feed-", dir="/var/tmp"))
    made.chmod(0o755)
    try:
        yield made
    finally:
        shutil.rmtree(made, ignore_errors=True)


@pytest.fixture
def seat_user(root: Path) -> Iterator[SeatUser]:
    user = provide_seat_user(root / "homes")
    try:
        yield user
    finally:
        remove_seat_user(user)


def _left_by_a_killed_broker(calls: Path, name: str, gid: int) -> Path:
    """A seat's folder as `_make_feed_dir` made it and the gateway's feed filled it, never removed."""
    folder = calls / name
    folder.mkdir(parents=True)
    os.chown(folder, 0, gid)
    folder.chmod(0o750)
    state = folder / "call-state.json"
    state.write_text(json.dumps(LAST_CALLER))
    state.chmod(0o644)
    return state


def _as(user: SeatUser, *argv: str) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(
        argv, user=user.uid, group=user.gid, extra_groups=[], capture_output=True, text=True, check=False
    )


def test_a_new_seat_user_never_reads_a_folder_an_earlier_holder_of_its_group_id_left(
    root: Path, seat_user: SeatUser
) -> None:
    calls = root / "seat-calls"
    stale = _left_by_a_killed_broker(calls, "seat-0123456789ab", seat_user.gid)
    assert _as(seat_user, "cat", str(stale)).returncode == 0, "control: the group id alone opens the folder"
    feed = calls / "seat-ba9876543210"
    make_feed_dir(feed, seat_user)
    assert not stale.parent.exists()
    assert _as(seat_user, "cat", str(stale)).returncode != 0
    assert _as(seat_user, "ls", str(calls)).returncode != 0, "seat users may not list the other seats' folders"
    assert stat.S_IMODE(calls.stat().st_mode) == 0o711
    assert (feed.stat().st_uid, feed.stat().st_gid, stat.S_IMODE(feed.stat().st_mode)) == (0, seat_user.gid, 0o750)
    assert _as(seat_user, "ls", str(feed)).returncode == 0


def test_folders_whose_group_no_seat_user_holds_go_as_a_broker_starts(root: Path, seat_user: SeatUser) -> None:
    calls = root / "seat-calls"
    live = calls / "seat-live00000000"
    make_feed_dir(live, seat_user)
    taken = {group.gr_gid for group in grp.getgrall()}
    free_gid = next(gid for gid in reversed(SEAT_UIDS) if gid not in taken)
    orphaned = _left_by_a_killed_broker(calls, "seat-dead00000000", free_gid)
    end_earlier_lives(calls)
    assert not orphaned.parent.exists(), "a folder a later seat user of that group id would read"
    assert live.is_dir(), "a live seat's folder was removed"
