"""Make the host's cgroup hierarchies visible where `ip netns exec` hid them.

`ip netns exec` gives the command a mount namespace of its own and mounts a fresh sysfs on /sys (so that
/sys/class/net shows the namespace's devices), which hides /sys/fs/cgroup. Seats need their cgroups, so a
test run inside such a namespace mounts the same hierarchies PID 1 sees, at the same places: mounting a
cgroup hierarchy again shows the same tree (same cgroups, same processes), and the mounts stay private to
this mount namespace.
"""

import ctypes
import ctypes.util
import os
from pathlib import Path

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def _cgroup_mounts(mountinfo: str) -> list[tuple[str, str, str]]:
    """(mount point, fstype, super options) for /sys/fs/cgroup itself and every cgroup mount under it."""
    found = []
    for line in mountinfo.splitlines():
        before, _, after = line.partition(" - ")
        point = before.split(" ")[4]
        fstype, _source, options = after.split(" ", 2)
        if point == "/sys/fs/cgroup" or fstype in ("cgroup", "cgroup2"):
            found.append((point, fstype, options if fstype != "tmpfs" else "mode=755"))
    return found


def _mount(source: str, target: str, fstype: str, options: str) -> None:
    if _libc.mount(source.encode(), target.encode(), fstype.encode(), 0, options.encode()) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"mount -t {fstype} {target}: {os.strerror(error)}")


def ensure_cgroup_hierarchies() -> None:
    """Mount the cgroup hierarchies PID 1 has when this process sees none (run as root); else do nothing."""
    if os.geteuid() != 0 or _cgroup_mounts(Path("/proc/self/mountinfo").read_text()):
        return
    for point, fstype, options in _cgroup_mounts(Path("/proc/1/mountinfo").read_text()):
        Path(point).mkdir(parents=True, exist_ok=True)
        # v1 hierarchies are named by their controllers; "rw" and the like are not mount data for cgroup.
        data = ",".join(o for o in options.split(",") if o not in ("rw", "ro")) if fstype == "cgroup" else ""
        _mount(fstype if fstype != "tmpfs" else "tmpfs", point, fstype, data if fstype != "tmpfs" else options)
