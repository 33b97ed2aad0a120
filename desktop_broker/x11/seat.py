"""One X11 kiosk seat: Xvfb, the broker's watermark, x11vnc and the published app, all as the seat user.

There is no window manager, no shell and no per-seat websockify: x11vnc listens on loopback only and
the gateway bridges the browser's websocket to `rfb_address` after checking the one-time launch token
(see `rfb_bridge` and docs/seats.md).

Confinement (as root): every process starts inside the seat's cgroup (`cgroups.SeatCgroup`, limits from
policy) as the seat's user, and the user's network allow-list (`egress`) is in place before the first one.
"""

import contextlib
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from desktop_broker.x11 import egress
from desktop_broker.x11.cgroups import CgroupEntry, SeatCgroup
from desktop_broker.x11.code_path import seat_python_path
from desktop_broker.x11.display import XDisplay, start_display
from desktop_broker.x11.errors import SeatStartFailed
from desktop_broker.x11.feed_dir import make_feed_dir
from desktop_broker.x11.processes import open_log, pss_kib, stop_process
from desktop_broker.x11.shared_memory import remove_segments_of
from desktop_broker.x11.spec import RfbAddress, SeatSpec
from desktop_broker.x11.users import SeatUser, processes_of, provide_seat_user, remove_seat_user
from desktop_broker.x11.vnc_server import start_x11vnc
from desktop_broker.x11.watermark import DRAWN_TIMEOUT_SECONDS, relabel, watermark_argv
from desktop_broker.x11.xauthority import write_cookie

DEFAULT_HOMES_ROOT = Path("/var/lib/sohogw/seats")
DEFAULT_RUNTIME_ROOT = Path("/run/sohogw/seats")
_ALLOW_LISTS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="seat-allow-list")
X11_SOCKET_DIR = Path("/tmp/.X11-unix")  # noqa: S108 - fixed by libxtrans


@dataclass(slots=True)
class SeatProcess:
    """A running seat. `failure()` names a part that died; `stop()` leaves nothing behind."""

    display: XDisplay
    user: SeatUser
    runtime_dir: Path
    watermark: subprocess.Popen[bytes]
    app: subprocess.Popen[bytes]
    x11vnc: subprocess.Popen[bytes]
    rfb_address: RfbAddress
    feed_dir: Path | None = None
    cgroup: SeatCgroup | None = None
    """None only when the broker is not root (dev mode: no seat user, nothing to confine)."""

    def parts(self) -> dict[str, subprocess.Popen[bytes]]:
        """The seat's processes by the name their log file carries (`<name>.log` in the runtime dir)."""
        return {
            "application": self.app,
            "watermark": self.watermark,
            "x11vnc": self.x11vnc,
            "Xvfb": self.display.process,
        }

    def failure(self) -> str | None:
        """Which part of the seat died and how, or None while every part runs."""
        for name, process in self.parts().items():
            code = process.poll()
            if code is not None:
                log = self.runtime_dir / f"{name.lower()}.log"
                tail = log.read_text(errors="replace")[-300:].strip() if log.exists() else ""
                return f"seat {self.display.name}: {name} (pid {process.pid}) exited with code {code}; log: {tail!r}"
        return None

    def alive(self) -> bool:
        return self.failure() is None

    def x_environment(self) -> dict[str, str]:
        """DISPLAY and XAUTHORITY for a trusted (root) X client of this seat, e.g. xdotool."""
        return {"DISPLAY": self.display.name, "XAUTHORITY": str(self.runtime_dir / "root.xauth")}

    def idle_seconds(self) -> float:
        """Time since the last input on the display (XScreenSaver extension, via Debian's xprintidle).

        Asked as the seat user, in its cgroup and a Landlock domain of its own, never as root: the seat user owns
        the display's socket (`/tmp/.X11-unix/X<n>`), so once Xvfb is gone whatever the seat runs may answer there,
        and a root X client would parse that program's replies.
        """
        with _entering(self.cgroup, self.user) as entry:
            result = subprocess.run(
                ["xprintidle"],
                env={**_base_env(), **_x_env(self.user, self.display)},
                capture_output=True,
                text=True,
                check=True,
                timeout=5,
                preexec_fn=entry,  # system calls only (cgroups.CgroupEntry)
            )
        return int(result.stdout.strip()) / 1000

    def pss_kib(self) -> dict[str, int]:
        """Memory per part (PSS), including any child the application forked as the seat user."""
        sizes = {name: pss_kib(process.pid) for name, process in self.parts().items()}
        if self.user.created:
            for pid in set(processes_of(self.user.uid)) - {p.pid for p in self.parts().values()}:
                with contextlib.suppress(FileNotFoundError):  # a helper may exit while we read
                    sizes["application"] += pss_kib(pid)
        return sizes

    def show_watermark(self, label: str, timeout_seconds: float = DRAWN_TIMEOUT_SECONDS) -> None:
        """Relabel the watermark with `label` and return once the X server has drawn it: a pooled seat is started
        before anyone is known to hold it, and is handed over only with its holder's name on the display.

        The running strip is told (`watermark.relabel`, ~1 ms); starting a new strip and stopping the old one cost
        ~55 ms of every launch. Raises `WatermarkNotDrawn` when the strip does not confirm within `timeout_seconds`.
        """
        relabel(self.watermark, label, timeout_seconds)

    def stop(self) -> None:
        """Stop every part (SIGTERM, then SIGKILL), kill what is left in the cgroup, then remove the seat's
        network rules, user, files and cookies. Idempotent."""
        for process in (self.app, self.watermark, self.x11vnc, self.display.process):
            stop_process(process)
        if self.cgroup is not None:
            self.cgroup.remove()
        if self.user.created:
            egress.remove_egress(self.user.uid)
            remove_segments_of(self.user.uid)
        if self.feed_dir is not None:  # before the user: once it is gone, `useradd` may hand its gid to another
            shutil.rmtree(self.feed_dir, ignore_errors=True)
        remove_seat_user(self.user)
        shutil.rmtree(self.runtime_dir, ignore_errors=True)


def start_seat(
    spec: SeatSpec, homes_root: Path = DEFAULT_HOMES_ROOT, runtime_root: Path = DEFAULT_RUNTIME_ROOT
) -> SeatProcess:
    """Bring up one seat and return once x11vnc accepts viewers on loopback.

    Order: user, cgroup, Xvfb, watermark, x11vnc (which deletes its passwords file on reading it), then
    the app, so the app never sees the passwords file. The network allow-list (one `nft` run, ~10-40 ms)
    is installed meanwhile and waited for before the app starts: Xvfb, the watermark and x11vnc open no
    connection (`-nolisten tcp`, `-localhost -nolookup`); the app is the first process that could. On any
    failure every part already started is undone before the error is raised.
    """
    runtime_root.mkdir(mode=0o711, parents=True, exist_ok=True)
    runtime_root.chmod(0o711)  # the seat users enter their own directory below; nobody may list it
    _require_enterable(runtime_root)
    runtime_dir = Path(tempfile.mkdtemp(prefix="seat-", dir=runtime_root))
    runtime_dir.chmod(0o711)
    started: list[subprocess.Popen[bytes]] = []
    user: SeatUser | None = None
    cgroup: SeatCgroup | None = None
    allow_list: Future[None] | None = None
    try:
        user = provide_seat_user(homes_root)
        private_dir = runtime_dir / "seat"
        private_dir.mkdir(mode=0o700)
        owner = (user.uid, user.gid) if user.created else (-1, -1)
        os.chown(private_dir, *owner)
        if user.created:
            cgroup = SeatCgroup.create(user.instance_id, user.name, spec.limits)
            allow_list = _ALLOW_LISTS.submit(egress.allow_egress, user.uid, spec.egress)
        _ensure_x11_socket_dir()
        with _entering(cgroup, user) as entry:
            display = start_display(spec.geometry, runtime_dir, private_dir, owner, entry)
        started.append(display.process)
        write_cookie(runtime_dir / "root.xauth", display.number, display.cookie)
        write_cookie(user.home / ".Xauthority", display.number, display.cookie, *owner)
        if spec.feed_dir is not None:
            make_feed_dir(spec.feed_dir, user)
        watermark = _spawn_watermark(spec.watermark, user, display, runtime_dir, cgroup)
        started.append(watermark)
        with _entering(cgroup, user, may_listen_tcp=True) as entry:
            x11vnc, port = start_x11vnc(
                spec, _x_env(user, display), _base_env(), runtime_dir, private_dir, owner, entry
            )
        started.append(x11vnc)
        if allow_list is not None:
            allow_list.result()
        app = _spawn_app(spec, display, user, runtime_dir, cgroup)
        started.append(app)
    except BaseException:
        for process in reversed(started):
            stop_process(process)
        if cgroup is not None:
            cgroup.remove()
        if allow_list is not None:
            with contextlib.suppress(SeatStartFailed):
                allow_list.result()  # finished, so that its rules cannot appear after the removal
        if spec.feed_dir is not None:  # before the user, as in `SeatProcess.stop`
            shutil.rmtree(spec.feed_dir, ignore_errors=True)
        if user is not None:
            if user.created:
                egress.remove_egress(user.uid)
            remove_seat_user(user)
        shutil.rmtree(runtime_dir, ignore_errors=True)
        raise
    return SeatProcess(
        display, user, runtime_dir, watermark, app, x11vnc, RfbAddress("127.0.0.1", port), spec.feed_dir, cgroup
    )


def _require_enterable(directory: Path) -> None:
    """The seat's processes run as its user and must pass through every directory above their own."""
    if os.geteuid() != 0:
        return
    closed = [d for d in (directory, *directory.parents) if not d.stat().st_mode & stat.S_IXOTH]
    if closed:
        raise SeatStartFailed(
            f"seat users cannot enter {closed[0]} (mode {closed[0].stat().st_mode & 0o777:o}): "
            f"give it o+x or choose another seats.runtime_root"
        )


def _ensure_x11_socket_dir() -> None:
    """X servers put their sockets in /tmp/.X11-unix, which must exist, sticky and world-writable, for an
    Xvfb running as a seat user to create its own there."""
    if os.geteuid() == 0:
        X11_SOCKET_DIR.mkdir(mode=0o1777, exist_ok=True)
        X11_SOCKET_DIR.chmod(0o1777)


@contextlib.contextmanager
def _entering(cgroup: SeatCgroup | None, user: SeatUser, may_listen_tcp: bool = False) -> Iterator[CgroupEntry | None]:
    """The `preexec_fn` that puts a child in the seat's cgroup as the seat user, in a Landlock domain of its own
    (`landlock_domain`; only x11vnc `may_listen_tcp`). None in dev mode."""
    if not user.created:
        yield None
        return
    entry = (
        cgroup.entry(user.uid, user.gid, may_listen_tcp)
        if cgroup is not None
        else CgroupEntry((), user.uid, user.gid, may_listen_tcp)
    )
    try:
        yield entry
    finally:
        entry.close()


def _base_env() -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONPATH": seat_python_path()}


def _x_env(user: SeatUser, display: XDisplay) -> dict[str, str]:
    """DISPLAY and the seat user's own cookie file, for the processes that run as that user."""
    return {"DISPLAY": display.name, "XAUTHORITY": str(user.home / ".Xauthority")}


def _spawn(
    argv: list[str],
    env: dict[str, str],
    log_path: Path,
    user: SeatUser,
    cgroup: SeatCgroup | None,
    cwd: Path | None = None,
    piped: bool = False,
) -> subprocess.Popen[bytes]:
    """Start a seat part; with `piped`, its stdin and stdout are pipes to the broker (the watermark's relabelling)
    and only its stderr goes to the log."""
    with open_log(log_path) as log, _entering(cgroup, user) as entry:
        return subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.PIPE if piped else subprocess.DEVNULL,
            stdout=subprocess.PIPE if piped else log,
            stderr=log,
            start_new_session=True,
            preexec_fn=entry,  # system calls only (cgroups.CgroupEntry)
            umask=0o077,
        )


def _spawn_watermark(
    label: str, user: SeatUser, display: XDisplay, runtime_dir: Path, cgroup: SeatCgroup | None
) -> subprocess.Popen[bytes]:
    return _spawn(
        watermark_argv(label),
        {**_base_env(), **_x_env(user, display), "HOME": str(user.home)},
        runtime_dir / "watermark.log",
        user,
        cgroup,
        piped=True,
    )


def _spawn_app(
    spec: SeatSpec, display: XDisplay, user: SeatUser, runtime_dir: Path, cgroup: SeatCgroup | None
) -> subprocess.Popen[bytes]:
    """The published application, as the seat user, in its empty home, with its own copy of the cookie."""
    env = {
        **_base_env(),
        **_x_env(user, display),
        "HOME": str(user.home),
        "USER": user.name,
        "LOGNAME": user.name,
        "PYTHONDONTWRITEBYTECODE": "1",
        **spec.app_env,
    }
    return _spawn(list(spec.app_argv), env, runtime_dir / "application.log", user, cgroup, cwd=user.home)
