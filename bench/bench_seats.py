"""Bench: cold start of an X11 kiosk seat to its first frame, and memory per seat.

Run as root: `.venv/bin/python -m bench.bench_seats --seats 10`. Each seat runs the Customer Console.
Cold start = from `start_seat()` to the first FramebufferUpdate a VNC viewer (view-only password)
receives. Memory = PSS from /proc/PID/smaps_rollup summed over the seat's processes, measured while all
seats run at once (shared pages are split among them, as in production), three times: with no client, with the
authenticated standby connection a warm seat of the pool holds, and in use (a viewer that has received the whole
screen stays connected, as the agent's browser does). The baseline, in the same process: a bare Xvfb (same flags)
started and measured the same way.
"""

import argparse
import shutil
import socket
import statistics
import struct
import tempfile
import time
from pathlib import Path

from desktop_broker.x11 import (
    SeatPasswords,
    SeatProcess,
    SeatSpec,
    open_authenticated,
    start_seat,
    wait_for_first_frame,
)
from desktop_broker.x11.display import XDisplay, start_display
from desktop_broker.x11.processes import pss_kib, stop_process
from desktop_broker.x11.spec import Geometry
from policy.rules import DisplayRules
from tests.support.cgroups import ensure_cgroup_hierarchies

NODE_MIB = 24 * 1024
CONSOLE_ARGV = ["/usr/bin/python3", "-m", "desktop_broker.apps.customer_console"]
VIEWER_ENCODINGS = (7, 16, 1, 0)
"""Tight, ZRLE, CopyRect, Raw: what the gateway's relay lets the browser's noVNC ask x11vnc for."""
MEASURES = ("no client", "warm (standby connection)", "in use (a viewer connected)")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def bench_bare_xvfb(count: int, root: Path) -> tuple[list[float], list[int]]:
    """Baseline: Xvfb alone, start to accepting connections, and its PSS with `count` running."""
    durations, displays = [], []
    try:
        for index in range(count):
            runtime = root / f"bare-{index}"
            runtime.mkdir()
            started = time.monotonic()
            display: XDisplay = start_display(Geometry(), runtime, runtime)
            durations.append(time.monotonic() - started)
            displays.append(display)
        return durations, [pss_kib(display.process.pid) for display in displays]
    finally:
        for display in displays:
            stop_process(display.process)


def bench_seats(count: int, root: Path) -> tuple[list[float], list[float], dict[str, list[dict[str, int]]]]:
    """Start `count` seats one after another; their start times, and their PSS per measure in `MEASURES`."""
    ready, first_frame, seats, clients = [], [], [], []
    sizes: dict[str, list[dict[str, int]]] = {}
    try:
        for _ in range(count):
            passwords = SeatPasswords.generate()
            spec = SeatSpec(CONSOLE_ARGV, DisplayRules(), "bench-agent", passwords)
            started = time.monotonic()
            seat: SeatProcess = start_seat(spec, homes_root=root / "homes", runtime_root=root / "run")
            ready.append(time.monotonic() - started)
            seats.append((seat, passwords))
            wait_for_first_frame(seat.rfb_address, passwords.view_only)
            first_frame.append(time.monotonic() - started)
        time.sleep(2.0)  # let every app finish drawing before memory is read
        no_client, warm, in_use = MEASURES
        sizes[no_client] = [seat.pss_kib() for seat, _ in seats]
        clients += [open_authenticated(seat.rfb_address, passwords.full_access) for seat, passwords in seats]
        time.sleep(1.0)
        sizes[warm] = [seat.pss_kib() for seat, _ in seats]
        for client in clients:
            _view_whole_screen(client)
        time.sleep(1.0)
        sizes[in_use] = [seat.pss_kib() for seat, _ in seats]
        return ready, first_frame, sizes
    finally:
        for client in clients:
            client.close()
        for seat, _ in seats:
            seat.stop()


def _view_whole_screen(client: socket.socket) -> None:
    """Go on from a standby connection as the browser's viewer does: ClientInit, the compressed encodings noVNC asks
    for (so x11vnc holds its encoders' state), one whole screen requested and read; the connection stays open."""
    client.sendall(b"\x01")  # shared
    width, height = struct.unpack(">HH", _read(client, 4))
    _read(client, 16)
    _read(client, struct.unpack(">I", _read(client, 4))[0])
    client.sendall(struct.pack(">BxH4i", 2, 4, *VIEWER_ENCODINGS))
    client.sendall(struct.pack(">BBHHHH", 3, 0, 0, 0, width, height))
    client.settimeout(0.5)
    try:
        while client.recv(1 << 16):  # the update, whatever its encoding; it ends when the seat has nothing more
            continue
    except TimeoutError:
        return
    raise RuntimeError("the seat closed the viewer's connection")


def _read(client: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = client.recv(size - len(data))
        if not chunk:
            raise RuntimeError("the seat closed the connection")
        data += chunk
    return bytes(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seats", type=int, default=10)
    args = parser.parse_args()
    ensure_cgroup_hierarchies()  # seats need their cgroups, which `ip netns exec` hides
    root = Path(tempfile.mkdtemp(prefix="sohogw-bench-", dir="/var/tmp"))
    root.chmod(0o755)
    try:
        bare_start, bare_pss = bench_bare_xvfb(args.seats, root)
        ready, first_frame, sizes = bench_seats(args.seats, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    bare_p50 = statistics.median(bare_start)
    print(f"seats: {args.seats} (Xvfb 1280x800x24, Customer Console, watermark, x11vnc; no websockify)")
    print(f"bare Xvfb start      p50 {bare_p50 * 1000:7.1f} ms  p95 {percentile(bare_start, 0.95) * 1000:7.1f} ms")
    ready_p50, ready_p95 = statistics.median(ready), percentile(ready, 0.95)
    print(f"seat ready (x11vnc)  p50 {ready_p50 * 1000:7.1f} ms  p95 {ready_p95 * 1000:7.1f} ms")
    frame_p50, frame_p95 = statistics.median(first_frame), percentile(first_frame, 0.95)
    print(
        f"seat first frame     p50 {frame_p50 * 1000:7.1f} ms  p95 {frame_p95 * 1000:7.1f} ms"
        f"  ({frame_p50 / bare_p50:.1f}x bare Xvfb start)"
    )
    bare_mib = statistics.mean(bare_pss) / 1024
    print(f"bare Xvfb PSS        {bare_mib:6.1f} MiB")
    for measure, measured in sizes.items():
        print(f"seat PSS, {measure}:")
        for part in measured[0]:
            print(f"  {part:<12} PSS   {statistics.mean(size[part] for size in measured) / 1024:6.1f} MiB")
        seat_mib = statistics.mean(sum(size.values()) for size in measured) / 1024
        print(f"  seat total   PSS   {seat_mib:6.1f} MiB  ({seat_mib / bare_mib:.1f}x bare Xvfb)")
        print(f"  seats in 24 GiB    {NODE_MIB // seat_mib:6.0f}      (memory alone, at this PSS; CPU is not counted)")


if __name__ == "__main__":
    main()
