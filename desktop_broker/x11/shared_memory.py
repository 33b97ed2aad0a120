"""A seat's System V shared memory, removed with the seat.

Xvfb and x11vnc share frames through MIT-SHM segments. A segment lives until someone removes it, not until its
creator dies: a seat whose processes are killed (the broker's SIGKILL fallback, a crashed gateway's earlier life)
leaves its segments behind, and once the node holds `kernel.shmmni` of them (4096 here) no new x11vnc can start
("shmget: No space left on device") and every new seat fails. So the seat's last step removes every segment its
user created or owns.
"""

import subprocess
from pathlib import Path

SYSVIPC_SHM = Path("/proc/sysvipc/shm")


def segments_of(uid: int) -> list[int]:
    """The ids of the segments ``uid`` created or owns (`/proc/sysvipc/shm`: shmid, uid and cuid columns)."""
    try:
        lines = SYSVIPC_SHM.read_text().splitlines()
    except FileNotFoundError:
        return []
    header = lines[0].split()
    shmid, owner, creator = header.index("shmid"), header.index("uid"), header.index("cuid")
    rows = [line.split() for line in lines[1:]]
    return [int(row[shmid]) for row in rows if str(uid) in (row[owner], row[creator])]


def remove_segments_of(uid: int) -> list[int]:
    """Remove the segments of ``uid`` (`ipcrm`); returns those it could not remove (already gone counts as removed)."""
    left = []
    for segment in segments_of(uid):
        done = subprocess.run(["ipcrm", "-m", str(segment)], capture_output=True, check=False)
        if done.returncode != 0 and segment in segments_of(uid):
            left.append(segment)
    return left
