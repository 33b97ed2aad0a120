"""The seat pool with real Xvfb/x11vnc seats: warm hand-over, the cap per node, recycle and wipe, crash replacement."""

import os
import signal
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop_broker.pool import SeatKind, SeatPool, SeatUnavailable
from desktop_broker.x11 import (
    SeatPasswords,
    SeatProcess,
    SeatSpec,
    open_authenticated,
    start_seat,
    wait_for_first_frame,
)
from desktop_broker.x11.errors import WatermarkNotDrawn
from policy import DisplayRules
from tests.desktop_broker.x11_fixtures import CONSOLE_ARGV, wait_for_window, watermark_text
from tests.gateway.seats.conftest import seat_root

pytestmark = pytest.mark.e2e
CONSOLE = SeatKind("customer-console", tuple(CONSOLE_ARGV), DisplayRules())
OTHER = SeatKind("customer-console", tuple(CONSOLE_ARGV), DisplayRules(clipboard_in=True))


@pytest.fixture
def pool() -> Iterator[SeatPool]:
    with seat_root() as root:

        def start(spec: SeatSpec) -> SeatProcess:
            return start_seat(spec, homes_root=root / "homes", runtime_root=root / "run")

        def standby(process: SeatProcess, passwords: SeatPasswords) -> socket.socket:
            return open_authenticated(process.rfb_address, passwords.full_access)

        seats = SeatPool(start=start, node_cap=2, warm_per_kind=1, open_standby=standby)
        try:
            yield seats
        finally:
            seats.stop_all()


def _warm_ids(pool: SeatPool) -> set[str]:
    return set(pool._seats) - set(pool.held())


def _processes_of(uid: int) -> list[int]:
    """Live processes of ``uid``. A zombie is not one: it has left the seat's cgroup and runs nothing, and whoever
    inherited it (init, for a child of the app) reaps it in its own time."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and proc.stat().st_uid == uid:
                state = (proc / "stat").read_text().rpartition(")")[2].split()[0]
                if state not in ("Z", "X"):
                    found.append(int(proc.name))
        except FileNotFoundError:
            continue
    return found


def test_a_warm_seat_is_handed_over_with_the_agent_on_its_watermark(pool: SeatPool) -> None:
    pool.want_warm([CONSOLE])
    assert pool.fill() == 1 and pool.count() == (0, 1)
    (warm_id,) = _warm_ids(pool)
    seat = pool.assign(CONSOLE, holder="lease-1", label="agent1")
    assert seat.seat_id == warm_id and pool.count() == (1, 0)
    wait_for_window(seat.process, "^Customer Console")
    assert watermark_text(seat.process).startswith("agent1 \u00b7 ")
    assert wait_for_first_frame(seat.process.rfb_address, seat.passwords.full_access) < 5


def test_a_warm_seat_whose_watermark_does_not_show_the_agent_is_not_handed_over(pool: SeatPool) -> None:
    pool.want_warm([CONSOLE])
    pool.fill()
    (warm_id,) = _warm_ids(pool)
    warm = pool.get(warm_id)
    assert warm is not None
    os.kill(warm.process.watermark.pid, signal.SIGSTOP)  # the strip cannot draw the new label
    with pytest.raises(WatermarkNotDrawn):
        pool.assign(CONSOLE, holder="lease-1", label="agent1")
    assert pool.get(warm_id) is None and pool.count() == (0, 0), "the seat is stopped, not handed over"
    assert warm.process.watermark.poll() is not None


def test_a_warm_seat_holds_an_authenticated_connection_until_taken_and_closes_it_when_stopped(pool: SeatPool) -> None:
    pool.want_warm([CONSOLE])
    pool.fill()
    (warm_id,) = _warm_ids(pool)
    seat = pool.assign(CONSOLE, holder="lease-1", label="agent1")
    standby = pool.take_standby(seat)
    assert seat.seat_id == warm_id and standby is not None
    assert pool.take_standby(seat) is None, "a standby connection is handed out once"
    with standby:
        standby.sendall(b"\x01")  # ClientInit: x11vnc answers with ServerInit, so the connection stood authenticated
        header = standby.recv(24, socket.MSG_WAITALL)
        assert standby.recv(struct.unpack(">I", header[20:24])[0], socket.MSG_WAITALL) == b"SOHO seat"
    pool.fill()
    (second_id,) = _warm_ids(pool)
    second = pool.get(second_id)
    assert second is not None and second.standby is not None
    kept = second.standby
    pool.release(second_id)
    assert kept.fileno() == -1, "stopping a warm seat closes its standby connection"


def test_the_cap_per_node_refuses_with_a_clear_message_and_evicts_warm_seats_first(pool: SeatPool) -> None:
    pool.want_warm([CONSOLE])
    pool.fill()
    pool.assign(OTHER, holder="lease-1", label="agent1")  # no warm seat of this kind: a cold start
    assert pool.count() == (1, 1)
    pool.assign(OTHER, holder="lease-2", label="agent2")  # at the cap: the warm CONSOLE seat makes room
    assert pool.count() == (2, 0)
    with pytest.raises(SeatUnavailable, match="no seat free on this node: all 2 seats are in use"):
        pool.assign(CONSOLE, holder="lease-3", label="agent3")


def test_a_released_seat_is_wiped_and_never_handed_to_anyone_else(pool: SeatPool) -> None:
    seat = pool.assign(CONSOLE, holder="lease-1", label="agent1")
    home, user = seat.process.user.home, seat.process.user
    (home / "notes.txt").write_text("customer 4711")
    pool.release(seat.seat_id)
    assert not seat.process.alive() and pool.get(seat.seat_id) is None and not home.exists()
    if user.created:
        assert _processes_of(user.uid) == []
    pool.want_warm([CONSOLE])
    pool.fill()
    other = pool.assign(CONSOLE, holder="lease-2", label="agent2")
    assert other.seat_id != seat.seat_id and other.passwords != seat.passwords
    assert not (other.process.user.home / "notes.txt").exists()


def test_a_dead_seat_is_reported_with_its_holder_and_a_warm_one_replaced(pool: SeatPool) -> None:
    pool.want_warm([CONSOLE])
    pool.fill()
    held = pool.assign(OTHER, holder="lease-1", label="agent1")
    warm = pool.get(next(iter(_warm_ids(pool))))
    assert warm is not None
    os.kill(held.process.app.pid, signal.SIGKILL)
    os.kill(warm.process.x11vnc.pid, signal.SIGKILL)
    held.process.app.wait()
    warm.process.x11vnc.wait()
    dead = {d.seat_id: d for d in pool.find_dead()}
    assert set(dead) == {held.seat_id, warm.seat_id}
    assert dead[held.seat_id].holder == "lease-1" and "application" in dead[held.seat_id].failure
    assert dead[warm.seat_id].holder is None and "x11vnc" in dead[warm.seat_id].failure
    assert pool.fill() == 1 and pool.count() == (0, 1)
