"""The screen wall with 50 real seats: CPU per supervisor and per seat, bytes per second per tile.

Fifty agents each hold a seat with the Customer Console (Xvfb, x11vnc, the app). Supervisors fetch every seat's
picture every 2 s as the grid does (`/supervision/wall/screens/{session}` over HTTP), first one grid, then two;
half of the seats change their screen once every 2 s (a key typed into the console by xdotool, as root: that CPU is
the driver's, not counted). Counted: this process (the gateway: the picture thread, its RFB connections, JPEG
encoding, HTTP — and the bench's own HTTP clients, so an upper bound) and every seat's x11vnc (/proc). Baseline in
the same run: what a naive wall does, one ImageMagick capture and scale (`import -window root -resize 25% jpeg:-`)
per seat per refresh, timed over the same seats (child CPU). Also timed: a tile's first picture (a new view-only
connection, the whole screen, one JPEG). A Guacamole tile needs guacd, xrdp and a browser-launched RDP session, so
its figures are printed by tests/gateway/seats/test_guacamole_wall.py instead.

    ip netns exec NS .venv/bin/python -m bench.bench_screen_wall --seats 50 --seconds 20
"""

import argparse
import base64
import os
import resource
import subprocess
import tempfile
import threading
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlmodel import Session, select

from desktop_broker.pool import PooledSeat
from desktop_broker.x11.rfb_screen_copy import ScreenCopy
from gateway.db import make_engine
from gateway.migrate import upgrade
from gateway.seats.models import SeatLease
from gateway.seats.thumbnails import FIRST_PICTURE_WAIT_SECONDS, encode
from gateway.sessions.deps import SESSION_COOKIE
from tests.gateway.seats.conftest import TWO_APPS_POLICY, SeatPortal, launch, seat_portal
from tests.support.cgroups import ensure_cgroup_hierarchies

REFRESH_SECONDS = 2.0
TICKS = os.sysconf("SC_CLK_TCK")


def x11vnc_cpu(seats: list[PooledSeat]) -> float:
    """CPU seconds all the seats' x11vnc processes have used so far (utime + stime)."""
    total = 0
    for seat in seats:
        fields = Path(f"/proc/{seat.process.x11vnc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def poll(base_url: str, cookie: str, session_ids: list[str], stop: threading.Event, received: list[int]) -> None:
    """One supervisor's grid: every picture every REFRESH_SECONDS."""
    with httpx.Client(base_url=base_url, cookies={SESSION_COOKIE: cookie}, timeout=30) as client:
        while not stop.is_set():
            started = time.monotonic()
            for session_id in session_ids:
                answer = client.get(f"/supervision/wall/screens/{session_id}")
                if answer.status_code == 200:
                    received.append(len(answer.content))
            stop.wait(max(0.0, REFRESH_SECONDS - (time.monotonic() - started)))


def change_screens(seats: list[PooledSeat], stop: threading.Event) -> None:
    """Half the seats get a key typed every REFRESH_SECONDS."""
    while not stop.is_set():
        started = time.monotonic()
        for seat in seats[::2]:
            environment = {**os.environ, **seat.process.x_environment()}
            subprocess.run(["xdotool", "type", "x"], env=environment, capture_output=True, check=False)
        stop.wait(max(0.0, REFRESH_SECONDS - (time.monotonic() - started)))


def phase(
    portal: SeatPortal, cookies: list[str], ids: list[str], seats: list[PooledSeat], seconds: float
) -> tuple[float, float, list[int]]:
    """(gateway CPU s, x11vnc CPU s, bytes of each picture the first supervisor got) over ``seconds``."""
    stop = threading.Event()
    received: list[list[int]] = [[] for _ in cookies]
    workers = [threading.Thread(target=change_screens, args=(seats, stop))]
    workers += [
        threading.Thread(target=poll, args=(portal.base_url, cookie, ids, stop, mine))
        for cookie, mine in zip(cookies, received, strict=True)
    ]
    cpu, vnc = time.process_time(), x11vnc_cpu(seats)
    for worker in workers:
        worker.start()
    time.sleep(seconds)
    stop.set()
    for worker in workers:
        worker.join()
    return time.process_time() - cpu, x11vnc_cpu(seats) - vnc, received[0]


def naive_capture(seats: list[PooledSeat]) -> float:
    """Child CPU seconds of one ImageMagick capture-and-scale per seat (what a wall without a shared reader does)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for seat in seats:
        environment = {**os.environ, **seat.process.x_environment()}
        command = ["import", "-window", "root", "-resize", "25%", "jpeg:-"]
        subprocess.run(command, env=environment, capture_output=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def first_pictures(seats: list[PooledSeat]) -> list[float]:
    """Seconds from opening a new view-only connection to a seat's first JPEG, for each seat."""
    seconds = []
    for seat in seats:
        copy = ScreenCopy(seat.process.rfb_address, seat.passwords.view_only)
        started = time.monotonic()
        assert copy.refresh(FIRST_PICTURE_WAIT_SECONDS)
        encode(copy)
        seconds.append(time.monotonic() - started)
        copy.close()
    return sorted(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seats", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    ensure_cgroup_hierarchies()  # seats need their cgroups, which `ip netns exec` hides
    agents = {f"wall{n:03d}": base64.b64encode(n.to_bytes(2, "big") * 16).decode() for n in range(1, args.seats + 1)}
    with tempfile.TemporaryDirectory(prefix="sohogw-bench-screens-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        root.chmod(0o755)
        url = f"sqlite:///{root / 'screens.db'}"
        upgrade(url)
        engine = make_engine(url)
        stack.callback(engine.dispose)
        portal = stack.enter_context(
            seat_portal(root, url, engine, warm=0, cap=args.seats + 2, policy=TWO_APPS_POLICY, more_agents=agents)
        )
        for login in agents:
            client = stack.enter_context(portal.signed_in(login))
            assert launch(client).status_code == 200, login
        supervisors = [stack.enter_context(portal.signed_in("sup1")) for _ in range(1)]
        cookie = supervisors[0].cookies[SESSION_COOKIE]
        with Session(engine) as db:
            leases = db.exec(select(SeatLease)).all()
        ids = [lease.session_id for lease in leases]
        pool = portal.broker.pool
        assert pool is not None
        seats = [seat for lease in leases if (seat := pool.get(lease.seat_id)) is not None]
        assert len(seats) == args.seats, f"{len(seats)} seats running of {args.seats}"
        time.sleep(3)  # the consoles finish drawing
        firsts = first_pictures(seats)
        phase(portal, [cookie], ids, seats, REFRESH_SECONDS * 2)  # first pictures, connections opened
        thumbnails = portal.broker.thumbnails
        reader = (thumbnails.cpu_seconds, thumbnails.refreshes)
        one = phase(portal, [cookie], ids, seats, args.seconds)
        reader = (thumbnails.cpu_seconds - reader[0], thumbnails.refreshes - reader[1])
        two = phase(portal, [cookie, cookie], ids, seats, args.seconds)
        connections = portal.broker.thumbnails.connections()
        naive = min(naive_capture(seats) for _ in range(2))
        pictures = len(one[2])
        per_picture = one[0] / max(1, pictures)
        print(f"screen wall, {args.seats} seats, refresh {REFRESH_SECONDS:g} s, half the screens changing, "
              f"{args.seconds:g} s per phase ({datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} cores)")  # fmt: skip
        print(f"  gateway CPU, 1 supervisor: {one[0] / args.seconds * 100:.1f} % of a core for {pictures} pictures "
              f"({pictures / args.seconds / args.seats:.2f} per tile per second; {per_picture * 1000:.1f} ms each, "
              f"HTTP, sign-in check, scope, policy and grid watch included)")  # fmt: skip
        print(f"  gateway CPU, 2 grids open: {two[0] / args.seconds * 100:.1f} % of a core; the second adds "
              f"{(two[0] - one[0]) / args.seconds * 100:.1f} %")  # fmt: skip
        print(f"  x11vnc CPU, all seats: {one[1] / args.seconds * 100:.1f} % of a core with 1 supervisor, "
              f"{two[1] / args.seconds * 100:.1f} % with 2 (one upstream per seat: "
              f"{connections} connections)")  # fmt: skip
        bytes_per_tile = sum(one[2]) / args.seconds / args.seats
        average = sum(one[2]) / max(1, len(one[2]))
        print(f"  bytes per second per tile (one supervisor): {bytes_per_tile / 1024:.1f} KiB/s "
              f"(pictures of {average / 1024:.1f} KiB on average)")  # fmt: skip
        reader_ms = reader[0] / max(1, reader[1]) * 1000
        print(f"  picture reader (one RFB connection per seat, JPEG when changed): {reader_ms:.2f} ms CPU per seat "
              f"refresh ({reader[1]} refreshes), {reader[0] / args.seconds * 100:.1f} % of a core for all")  # fmt: skip
        naive_ms = naive / args.seats * 1000
        print(f"  baseline, a capture + scale per seat per refresh (ImageMagick import): {naive_ms:.1f} ms "
              f"per seat per refresh, {naive / REFRESH_SECONDS * 100:.0f} % of a core per supervisor; ours "
              f"{reader_ms:.2f} ms per seat refresh ({naive_ms / max(reader_ms, 1e-3):.0f}x less)")  # fmt: skip
        print(f"  first picture of a tile (connect, whole screen, JPEG): p50 {firsts[len(firsts) // 2] * 1000:.0f} ms, "
              f"max {firsts[-1] * 1000:.0f} ms over {len(firsts)} seats")  # fmt: skip
        portal.broker.thumbnails.stop()


if __name__ == "__main__":
    main()
