"""Two seat pools of two broker processes on one machine, with real seats (Xvfb, watermark, app, x11vnc)."""

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop_broker.pool import SeatKind, SeatPool
from desktop_broker.x11 import SeatProcess, SeatSpec, start_seat, users
from desktop_broker.x11.users import processes_of
from policy.rules import DisplayRules
from tests.desktop_broker.test_x11_users import PROJECT_ROOT, exists, passwd_file_locked

pytestmark = pytest.mark.e2e

APP = SeatKind("sleeper", ("sleep", "300"), DisplayRules())
OTHER_POOL = """
import json, sys
from pathlib import Path
from desktop_broker.pool import SeatKind, SeatPool
from desktop_broker.x11 import start_seat
from policy.rules import DisplayRules
root = Path(sys.argv[1])
pool = SeatPool(lambda spec: start_seat(spec, root / "homes", root / "run"), node_cap=2, warm_per_kind=2)
kind = SeatKind("sleeper", ("sleep", "300"), DisplayRules())
pool.want_warm([kind])
pool.fill()
seats = [pool.assign(kind, f"agent-{n}", f"agent-{n}").process for n in range(2)]
print(json.dumps([[s.user.name, s.user.uid, s.app.pid] for s in seats]), flush=True)
sys.stdin.read()
print(json.dumps([u.reason for u in pool.stop_all()]), flush=True)
"""


@pytest.fixture
def root() -> Iterator[Path]:
    made = Path(tempfile.mkdtemp(prefix="sohogw-pools-", dir="/var/tmp"))
    made.chmod(0o755)  # seat users traverse it to their homes
    try:
        yield made
    finally:
        shutil.rmtree(made, ignore_errors=True)


def our_pool(root: Path) -> SeatPool:
    def start(spec: SeatSpec) -> SeatProcess:
        return start_seat(spec, homes_root=root / "ours" / "homes", runtime_root=root / "ours" / "run")

    pool = SeatPool(start, node_cap=2, warm_per_kind=2)
    pool.want_warm([APP])
    return pool


def test_two_brokers_pools_start_and_stop_seats_side_by_side_without_disturbing_each_other(root: Path) -> None:
    other = subprocess.Popen(
        [sys.executable, "-c", OTHER_POOL, str(root / "other")],
        cwd=PROJECT_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    pool = our_pool(root)
    try:
        assert other.stdout is not None and other.stdin is not None
        ours_seen: list[str] = []
        for round_ in range(3):  # the first round overlaps the other pool's start
            assert pool.fill() == 2
            ours_seen += [pool.assign(APP, "agent-x", "agent-x").process.user.name for _ in range(2)]
            assert pool.stop_all() == []
            if round_ == 0:
                theirs = json.loads(other.stdout.readline())
        for name, uid, app_pid in theirs:
            assert exists(name), f"{name} of the other broker was removed"
            assert app_pid in processes_of(uid), f"the other broker's app {app_pid} ({name}) was killed"
        other.stdin.close()
        assert json.loads(other.stdout.readline()) == []
        assert other.wait(timeout=20) == 0
        assert len(set(ours_seen)) == 6
        assert not any(exists(name) for name in ours_seen + [t[0] for t in theirs])
        assert not any(processes_of(uid) for _, uid, _ in theirs)
        assert not list((root / "other" / "homes").iterdir()) and not list((root / "ours" / "homes").iterdir())
    finally:
        for seat in pool.stop_all():
            seat.seat.process.stop()
        if other.poll() is None:
            other.kill()
        other.wait(timeout=10)
        users.reap_stale_seat_users()


def test_stop_all_stops_every_seat_and_reports_those_whose_user_could_not_be_removed(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(users, "ACCOUNT_RETRY_SECONDS", 0.3)
    pool = our_pool(root)
    pool.fill()
    seats = [pool.assign(APP, f"agent-{n}", f"agent-{n}") for n in range(2)]
    try:
        with passwd_file_locked(30):
            unstopped = pool.stop_all()
        assert sorted(u.seat.seat_id for u in unstopped) == sorted(s.seat_id for s in seats)
        assert all("still locked by another program" in u.reason for u in unstopped)
        for seat in seats:
            assert all(part.poll() is not None for part in seat.process.parts().values())
            assert not processes_of(seat.process.user.uid), "a seat was left running after a failed stop"
            assert exists(seat.process.user.name)
        assert pool.count() == (0, 0)
    finally:
        for seat in seats:
            seat.process.stop()  # the lock is free again: stopping again completes (idempotent)
    assert not any(exists(s.process.user.name) or s.process.runtime_dir.exists() for s in seats)
