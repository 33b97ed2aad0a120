"""Bench: what confinement costs a seat, start time and memory, against the same seat unconfined.

Run as root (in the host's namespaces, where /sys/fs/cgroup is visible):
`.venv/bin/python -m bench.bench_confinement --seats 8`.

Confined = `start_seat()` as shipped: a cgroup per seat with pids/memory/CPU limits, the seat's processes
joining it between fork and exec, and its nftables allow-list installed first. Baseline, in the same run:
the same `start_seat()` with only those two steps replaced by no-ops (the processes still run as the
seat's user). Starts alternate confined/baseline so that load on the machine hits both alike; PSS is read
with all seats of both kinds running at once, so shared pages are split among all of them equally.
"""

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

from desktop_broker.x11 import SeatPasswords, SeatProcess, SeatSpec, start_seat, wait_for_first_frame
from policy.rules import DisplayRules

CONSOLE_ARGV = ["/usr/bin/python3", "-m", "desktop_broker.apps.customer_console"]


@contextmanager
def unconfined() -> Iterator[None]:
    """The baseline: no cgroup and no nftables rules for the seats started inside the block."""
    with (
        mock.patch("desktop_broker.x11.seat.SeatCgroup.create", return_value=None),
        mock.patch("desktop_broker.x11.seat.egress.allow_egress"),
        mock.patch("desktop_broker.x11.seat.egress.remove_egress"),
    ):
        yield


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def start_one(root: Path) -> tuple[SeatProcess, float, float]:
    passwords = SeatPasswords.generate()
    spec = SeatSpec(CONSOLE_ARGV, DisplayRules(), "bench-agent", passwords)
    started = time.monotonic()
    seat = start_seat(spec, homes_root=root / "homes", runtime_root=root / "run")
    ready = time.monotonic() - started
    wait_for_first_frame(seat.rfb_address, passwords.view_only)
    return seat, ready, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seats", type=int, default=8, help="seats of each kind")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="sohogw-bench-", dir="/var/tmp"))
    root.chmod(0o755)
    seats: dict[str, list[SeatProcess]] = {"baseline": [], "confined": []}
    ready: dict[str, list[float]] = {"baseline": [], "confined": []}
    frame: dict[str, list[float]] = {"baseline": [], "confined": []}
    try:
        for _ in range(args.seats):
            with unconfined():
                seat, up, shown = start_one(root)
            seats["baseline"].append(seat)
            ready["baseline"].append(up)
            frame["baseline"].append(shown)
            seat, up, shown = start_one(root)
            assert seat.cgroup is not None, "the confined seat has no cgroup: run as root with cgroups visible"
            seats["confined"].append(seat)
            ready["confined"].append(up)
            frame["confined"].append(shown)
        time.sleep(2.0)  # every app has drawn before memory is read
        pss = {kind: [sum(s.pss_kib().values()) / 1024 for s in group] for kind, group in seats.items()}
    finally:
        with unconfined():
            for seat in seats["baseline"]:
                seat.stop()
        for seat in seats["confined"]:
            seat.stop()
        shutil.rmtree(root, ignore_errors=True)

    print(f"seats: {args.seats} of each kind, started alternately (Customer Console, watermark, x11vnc)")
    for label, values in (("start_seat() returns", ready), ("first frame at a viewer", frame)):
        base, conf = statistics.median(values["baseline"]), statistics.median(values["confined"])
        print(
            f"{label:<24} baseline p50 {base * 1000:6.1f} ms p95 {percentile(values['baseline'], 0.95) * 1000:6.1f} ms"
            f" | confined p50 {conf * 1000:6.1f} ms p95 {percentile(values['confined'], 0.95) * 1000:6.1f} ms"
            f" | cost {100 * (conf - base) / base:+.1f} %"
        )
    base, conf = statistics.mean(pss["baseline"]), statistics.mean(pss["confined"])
    cost = 100 * (conf - base) / base
    print(f"{'PSS per seat':<24} baseline {base:6.1f} MiB | confined {conf:6.1f} MiB | cost {cost:+.1f} %")


if __name__ == "__main__":
    main()
