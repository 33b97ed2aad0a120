"""A seat's read-only inbox (the app's call state): the broker (root) writes, only the seat's group reads.

Who may read is decided by the group id alone, and group ids come back: `useradd` hands a removed seat user's gid to
the next seat user. A broker killed with `kill -9` leaves its seats' folders (and their last caller's number) behind
while the next broker removes their users (review finding F2). So a folder is made only after every folder the
root holds for the same gid is gone (left for an earlier holder of that gid), `end_earlier_lives` removes the
folders whose gid no seat user holds, and the root is 0711: seat users enter their own folder by its name (in the
app's environment) but cannot list the others'.
"""

import os
import shutil
import stat
from pathlib import Path

from desktop_broker.x11.users import SeatUser


def make_feed_dir(feed_dir: Path, user: SeatUser) -> None:
    """Make `feed_dir` root-owned, group the seat user's, 0750 (the app cannot plant a file: no group write)."""
    root = feed_dir.parent
    root.mkdir(mode=0o711, parents=True, exist_ok=True)
    root.chmod(0o711)
    if user.created:
        for leftover in folders_of_group(root, user.gid):
            shutil.rmtree(leftover)
    shutil.rmtree(feed_dir, ignore_errors=True)
    feed_dir.mkdir(mode=0o750)
    os.chown(feed_dir, os.geteuid(), user.gid)
    feed_dir.chmod(0o750)


def folders_of_group(root: Path, gid: int) -> list[Path]:
    """The folders (not links to one) right under `root` whose group is `gid`."""
    found = []
    for entry in root.iterdir():
        status = entry.lstat()
        if stat.S_ISDIR(status.st_mode) and status.st_gid == gid:
            found.append(entry)
    return found
