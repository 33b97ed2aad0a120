"""Each seat in a cgroup of its own: exact membership, limits from policy, and one kill that takes all.

Every process of a seat (Xvfb, the watermark, x11vnc, the app and whatever it forks) starts inside the
seat's cgroup, so the kernel, not a list of pids, says what belongs to the seat: its pids, memory and CPU
limits hold together, `stop()` kills exactly it, and a broker that was killed with `kill -9` and started
again finds its old seats by the directory tree alone.

Layout (docs/seats.md): `<hierarchy>/<the broker's own cgroup>/sohogw-seats/<instance id>/<seat user>`,
made in the cgroup v2 hierarchy (membership, `cgroup.kill`) and in every cgroup v1 hierarchy that holds a
controller v2 does not have (a hybrid host: pids, memory or cpu still mounted as v1). With systemd as PID 1
the unit must say `Delegate=yes` so the broker owns its subtree; the broker then moves itself into a leaf
`broker/` so its own cgroup may enable controllers for the seats (cgroup v2's "no internal processes").
"""

import contextlib
import errno
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from desktop_broker.x11 import landlock_domain
from desktop_broker.x11.errors import SeatError, SeatStartFailed
from policy.schema import SeatLimits

SEATS_GROUP = "sohogw-seats"
LIMITED = ("pids", "memory", "cpu")
CPU_PERIOD_US = 100_000
SEATS_CPU_WEIGHT_IN_PROCESSES = 64
_KILL_WAIT_SECONDS = 3.0


@dataclass(frozen=True, slots=True)
class Hierarchy:
    """One mounted cgroup hierarchy seats are made in, and which of `LIMITED` are set there."""

    seats_root: Path
    controllers: tuple[str, ...]
    unified: bool


def _parse_mounts(mountinfo: str) -> list[tuple[Path, str, set[str]]]:
    """(mount point, fstype, super options) of every cgroup mount, from /proc/self/mountinfo."""
    mounts = []
    for line in mountinfo.splitlines():
        before, _, after = line.partition(" - ")
        fstype, _source, options = after.split(" ", 2)
        if fstype in ("cgroup", "cgroup2"):
            mounts.append((Path(before.split(" ")[4]), fstype, set(options.split(","))))
    return mounts


def _own_paths(proc_cgroup: str) -> dict[str, str]:
    """Controller (or '' for v2) → this process's cgroup path in that hierarchy, from /proc/self/cgroup."""
    paths = {}
    for line in proc_cgroup.splitlines():
        _id, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def find_hierarchies() -> tuple[Hierarchy, ...]:
    """Where this process makes seat cgroups: the v2 hierarchy first, then v1 ones for missing controllers.

    Raises `SeatStartFailed` when there is no cgroup v2 hierarchy or a limit has nowhere to go.
    """
    mounts = _parse_mounts(Path("/proc/self/mountinfo").read_text())
    own = _own_paths(Path("/proc/self/cgroup").read_text())
    unified = next((point for point, fstype, _ in mounts if fstype == "cgroup2"), None)
    if unified is None or "" not in own:
        raise SeatStartFailed("no cgroup v2 hierarchy is mounted: seats cannot be confined (mount cgroup2)")
    own_v2 = unified / own[""].lstrip("/")
    available = set((own_v2 / "cgroup.controllers").read_text().split())
    in_v2 = tuple(name for name in LIMITED if name in available)
    if in_v2:
        _delegate(own_v2, in_v2)
    hierarchies = [Hierarchy(own_v2 / SEATS_GROUP, in_v2, unified=True)]
    for name in LIMITED:
        if name in in_v2:
            continue
        point = next((p for p, fstype, opts in mounts if fstype == "cgroup" and name in opts), None)
        if point is None or name not in own:
            raise SeatStartFailed(f"the {name} controller is mounted nowhere: seats cannot be limited")
        root = point / own[name].lstrip("/") / SEATS_GROUP
        known = next((h for h in hierarchies if h.seats_root == root), None)
        if known is None:
            hierarchies.append(Hierarchy(root, (name,), unified=False))
        else:
            hierarchies[hierarchies.index(known)] = Hierarchy(root, (*known.controllers, name), unified=False)
    return tuple(hierarchies)


def _delegate(own: Path, controllers: tuple[str, ...]) -> None:
    """Let `own`'s children use `controllers`; a non-root cgroup holding us must first lose its processes."""
    wanted = " ".join(f"+{name}" for name in controllers)
    try:
        (own / "cgroup.subtree_control").write_text(wanted)
    except OSError as error:
        if error.errno != errno.EBUSY:
            raise SeatStartFailed(f"cannot enable {wanted} in {own}: {error} (systemd: Delegate=yes)") from None
        leaf = own / "broker"
        leaf.mkdir(exist_ok=True)
        for pid in (own / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError, OSError):
                (leaf / "cgroup.procs").write_text(pid)
        (own / "cgroup.subtree_control").write_text(wanted)


@cache
def hierarchies() -> tuple[Hierarchy, ...]:
    return find_hierarchies()


def _group_weight(hierarchy: Hierarchy) -> dict[str, str]:
    """The CPU weight of the seats' group as a whole against its siblings (the gateway's own threads, other
    processes): by default a cgroup weighs as much as one process, so every seat together would get one
    process's share under contention and start ~20 % slower (measured with bench/bench_confinement.py).
    Weighed as `SEATS_CPU_WEIGHT_IN_PROCESSES` processes instead; each seat stays capped by its own limit."""
    if "cpu" not in hierarchy.controllers:
        return {}
    if hierarchy.unified:  # cpu.weight: 1..10000, a process's cgroup has 100
        return {"cpu.weight": str(min(10000, 100 * SEATS_CPU_WEIGHT_IN_PROCESSES))}
    return {"cpu.shares": str(1024 * SEATS_CPU_WEIGHT_IN_PROCESSES)}  # v1: a task weighs 1024


def _limit_files(hierarchy: Hierarchy, limits: SeatLimits) -> dict[str, str]:
    quota = CPU_PERIOD_US * limits.cpu_percent // 100
    memory = str(limits.memory_mib * 1024 * 1024)
    files: dict[str, str] = {}
    if "pids" in hierarchy.controllers:
        files["pids.max"] = str(limits.pids)
    if "memory" in hierarchy.controllers:
        files.update({"memory.max": memory} if hierarchy.unified else {"memory.limit_in_bytes": memory})
    if "cpu" in hierarchy.controllers:
        if hierarchy.unified:
            files["cpu.max"] = f"{quota} {CPU_PERIOD_US}"
        else:
            files.update({"cpu.cfs_period_us": str(CPU_PERIOD_US), "cpu.cfs_quota_us": str(quota)})
    return files


@dataclass(frozen=True, slots=True)
class SeatCgroup:
    """The seat's directory in each hierarchy; the first is cgroup v2's."""

    directories: tuple[Path, ...]

    @classmethod
    def create(cls, instance_id: str, seat_name: str, limits: SeatLimits) -> "SeatCgroup":
        """Make the seat's cgroups with their limits (controllers enabled on the way down in v2)."""
        made = []
        try:
            for hierarchy in hierarchies():
                directory = hierarchy.seats_root / instance_id / seat_name
                for level in (hierarchy.seats_root, hierarchy.seats_root / instance_id):
                    level.mkdir(exist_ok=True)
                    if hierarchy.unified and hierarchy.controllers:
                        wanted = " ".join(f"+{name}" for name in hierarchy.controllers)
                        (level / "cgroup.subtree_control").write_text(wanted)
                    for name, value in _group_weight(hierarchy).items():
                        (level / name).write_text(value)
                directory.mkdir()
                made.append(directory)
                for name, value in _limit_files(hierarchy, limits).items():
                    (directory / name).write_text(value)
        except OSError as error:
            SeatCgroup(tuple(made)).remove()
            raise SeatStartFailed(f"the seat's cgroup could not be made: {error}") from None
        return cls(tuple(made))

    def entry(self, uid: int | None, gid: int | None, may_listen_tcp: bool = False) -> "CgroupEntry":
        """What a child runs before exec to join the seat (and become its user): see `CgroupEntry`."""
        fds = tuple(os.open(d / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC) for d in self.directories)
        return CgroupEntry(fds, uid, gid, may_listen_tcp)

    def pids(self) -> list[int]:
        """Every process in the seat now (from cgroup v2, which holds them all)."""
        try:
            return [int(pid) for pid in (self.directories[0] / "cgroup.procs").read_text().split()]
        except (FileNotFoundError, IndexError):
            return []

    def read(self, name: str) -> str:
        """A control file of the seat, from whichever hierarchy has it (e.g. `pids.max`, `pids.current`)."""
        for directory in self.directories:
            if (directory / name).exists():
                return (directory / name).read_text().strip()
        raise FileNotFoundError(name)

    def kill(self) -> None:
        """SIGKILL everything in the seat and wait until the kernel has emptied it."""
        kill_cgroup(self.directories)

    def remove(self) -> None:
        """Kill what is left and remove the directories; idempotent."""
        kill_cgroup(self.directories)
        for directory in self.directories:
            with contextlib.suppress(FileNotFoundError):
                directory.rmdir()


@dataclass(frozen=True, slots=True)
class CgroupEntry:
    """A `preexec_fn`: join the seat's cgroups, then drop to the seat user, between fork and exec.

    Joining before exec is what makes membership exact: nothing the process runs can fork outside the
    cgroup first. It does only system calls on descriptors the parent opened (no locks, no imports), the
    one thing that is safe in a child forked from a threaded process. Call `close()` in the parent after.
    """

    fds: tuple[int, ...]
    uid: int | None
    gid: int | None
    may_listen_tcp: bool = False
    """Only x11vnc listens; every other seat process is refused `bind()` on TCP (`landlock_domain`)."""
    landlocked: bool = field(default_factory=landlock_domain.supported)
    """Whether to put the child in a Landlock domain of its own (`landlock_domain`; needs Linux 6.12)."""

    def __call__(self) -> None:
        for fd in self.fds:
            os.write(fd, b"0")  # "0" = the writing process itself (cgroup v1 and v2)
        if self.uid is not None and self.gid is not None:
            os.setgroups([])
            os.setgid(self.gid)
            os.setuid(self.uid)
            if self.landlocked:
                landlock_domain.confine_calling_process(self.may_listen_tcp)

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)


def kill_cgroup(directories: tuple[Path, ...], wait_seconds: float = _KILL_WAIT_SECONDS) -> None:
    """SIGKILL every process in the directories (v2: `cgroup.kill`, recursive) until they are empty."""
    deadline = time.monotonic() + wait_seconds
    while pids := _members(directories):
        for directory in directories:
            with contextlib.suppress(FileNotFoundError, OSError):
                if (directory / "cgroup.kill").exists():
                    (directory / "cgroup.kill").write_text("1")
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise SeatError(f"processes {sorted(pids)} of {directories[0]} survived SIGKILL; check for a stuck mount")
        time.sleep(0.01)


def _members(directories: tuple[Path, ...]) -> set[int]:
    found: set[int] = set()
    for directory in directories:
        for procs in _procs_files(directory):
            with contextlib.suppress(FileNotFoundError):
                found |= {int(pid) for pid in procs.read_text().split()}
    return found


def _procs_files(directory: Path) -> Iterator[Path]:
    if directory.is_dir():
        yield from directory.rglob("cgroup.procs")


def instance_ids() -> set[str]:
    """The broker instances that have (or had) seat cgroups on this node, live or dead."""
    return {
        entry.name for h in hierarchies() if h.seats_root.is_dir() for entry in h.seats_root.iterdir() if entry.is_dir()
    }


def remove_instance(instance_id: str) -> list[Path]:
    """Kill every process of an instance's seats and remove its cgroups; returns the seat directories."""
    removed = []
    for hierarchy in hierarchies():
        root = hierarchy.seats_root / instance_id
        if not root.is_dir():
            continue
        seats = tuple(entry for entry in root.iterdir() if entry.is_dir())
        kill_cgroup((root,))
        for seat in seats:
            with contextlib.suppress(FileNotFoundError):
                seat.rmdir()
            removed.append(seat)
        with contextlib.suppress(FileNotFoundError):
            root.rmdir()
    return removed
