"""A real seat (Xvfb, watermark, Customer Console, x11vnc) on this machine: what it shows, who runs it,
how it fails, and that stopping it leaves nothing behind."""

import os
import pwd
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from desktop_broker.x11 import SeatStartFailed, wait_for_first_frame
from desktop_broker.x11.errors import WatermarkNotDrawn
from desktop_broker.x11.rfb_screen_copy import ScreenCopy
from desktop_broker.x11.shared_memory import segments_of
from desktop_broker.x11.watermark import BACKGROUND, STRIP_HEIGHT, TEXT_COLOUR
from tests.desktop_broker.x11_fixtures import (
    WATERMARK_LABEL,
    RunningSeat,
    pixels_near,
    running_seat,
    screen_rgb,
    wait_for_window,
    watermark_text,
    x_run,
)

pytestmark = pytest.mark.e2e

HEADER_BLUE = (0x1F, 0x4E, 0x79)


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return (int(hex_colour[1:3], 16), int(hex_colour[3:5], 16), int(hex_colour[5:7], 16))


@pytest.fixture(scope="module")
def seat() -> Iterator[RunningSeat]:
    with running_seat() as running:
        wait_for_window(running.seat, "^Customer Console")
        yield running


def test_console_window_is_on_screen(seat: RunningSeat) -> None:
    rgb = screen_rgb(seat.seat)
    assert pixels_near(rgb, 1280, range(5, 60), HEADER_BLUE, tolerance=4) > 1280 * 40


def test_watermark_strip_with_text_is_drawn_on_the_display(seat: RunningSeat) -> None:
    """The strip is raised above the app twice a second, so give it that long to cover a fresh window."""
    strip = range(800 - STRIP_HEIGHT, 800)
    deadline = time.monotonic() + 3
    while True:
        rgb = screen_rgb(seat.seat)
        text_pixels = pixels_near(rgb, 1280, strip, _rgb(TEXT_COLOUR), tolerance=30)
        if text_pixels > 2000 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert text_pixels > 2000, "the watermark's text is not on the display"
    assert pixels_near(rgb, 1280, strip, _rgb(BACKGROUND), tolerance=4) > 1280 * STRIP_HEIGHT // 2
    assert pixels_near(rgb, 1280, range(100, 700), _rgb(TEXT_COLOUR), tolerance=30) == 0


def test_watermark_names_the_agent_and_the_minute_in_utc(seat: RunningSeat) -> None:
    """The strip's window carries the text it draws (WM_NAME, Latin-1); the time is UTC whatever the zone."""
    minutes = [datetime.now(UTC) - timedelta(minutes=step) for step in (0, 1)]
    expected = [f"{WATERMARK_LABEL} \u00b7 {when:%Y-%m-%d %H:%M} UTC" for when in minutes]
    assert watermark_text(seat.seat) in expected


def test_watermark_lets_the_pointer_through_to_the_app(seat: RunningSeat) -> None:
    x_run(seat.seat, ["xdotool", "mousemove", "640", str(800 - STRIP_HEIGHT // 2)])
    under_strip = x_run(seat.seat, ["xdotool", "getmouselocation", "--shell"]).stdout
    x_run(seat.seat, ["xdotool", "mousemove", "640", "400"])
    over_app = x_run(seat.seat, ["xdotool", "getmouselocation", "--shell"]).stdout
    window = [line for line in under_strip.splitlines() if line.startswith("WINDOW=")]
    assert window and window == [line for line in over_app.splitlines() if line.startswith("WINDOW=")]


def test_a_relabelled_watermark_is_drawn_with_the_new_label_when_the_call_returns() -> None:
    """What a hand-over relies on: once `show_watermark` returns, the display shows the holder's name."""
    with running_seat() as running:
        wait_for_window(running.seat, "^Customer Console")
        strip = slice(1280 * (800 - STRIP_HEIGHT) * 3, None)
        before = screen_rgb(running.seat)[strip]
        running.seat.show_watermark("agent-handed-over")
        minutes = [datetime.now(UTC) - timedelta(minutes=step) for step in (0, 1)]
        assert watermark_text(running.seat) in [
            f"agent-handed-over \u00b7 {when:%Y-%m-%d %H:%M} UTC" for when in minutes
        ]
        assert screen_rgb(running.seat)[strip] != before, "the strip's pixels still show the old label"
        assert running.seat.alive()


def test_a_watermark_that_does_not_confirm_its_new_label_fails_the_relabel() -> None:
    """A strip that cannot draw (here: stopped) must not let a seat be handed over under another label."""
    with running_seat() as running:
        os.kill(running.seat.watermark.pid, signal.SIGSTOP)
        try:
            with pytest.raises(WatermarkNotDrawn, match="did not draw 'agent-handed-over'"):
                running.seat.show_watermark("agent-handed-over", timeout_seconds=0.5)
        finally:
            os.kill(running.seat.watermark.pid, signal.SIGCONT)


def test_the_seat_user_reaches_neither_end_of_its_watermarks_pipes() -> None:
    """The strip reads new labels from the broker's pipe and confirms on another. The app runs as the same Unix user:
    through /proc/PID/fd it could otherwise write a label of its own, or a "drawn" before the strip drew the agent's.
    The pipes are the broker's (created by root, mode 0600), so reopening them is refused."""
    with running_seat() as running:
        shown = watermark_text(running.seat)
        for fd, line in ((0, "someone-else"), (1, "drawn")):
            tried = subprocess.run(
                ["sh", "-c", f"echo {line} > /proc/{running.seat.watermark.pid}/fd/{fd}"],
                user=running.seat.user.uid,
                group=running.seat.user.gid,
                extra_groups=[],
                capture_output=True,
                check=False,
            )
            assert tried.returncode != 0 and b"Permission denied" in tried.stderr, tried
        time.sleep(0.2)
        assert watermark_text(running.seat) == shown
        running.seat.show_watermark("agent-handed-over")  # a forged "drawn" would be read here first
        assert watermark_text(running.seat).startswith("agent-handed-over \u00b7 ")


def test_a_strip_the_app_unmapped_is_mapped_again_before_the_new_label_is_confirmed() -> None:
    """The app holds the display's cookie and can unmap the strip while its seat waits in the pool; a hand-over must
    not then confirm a label nobody sees. The strip maps itself back in place before it answers "drawn"."""
    with running_seat() as running:
        strip = x_run(running.seat, ["xdotool", "search", "--classname", "^sohogw-watermark$"]).stdout.split()[0]
        assert x_run(running.seat, ["xdotool", "windowunmap", strip], as_seat_user=True).returncode == 0
        running.seat.show_watermark("agent-handed-over")
        shown = x_run(running.seat, ["xwininfo", "-id", strip], text=False).stdout.decode("latin-1")  # its name
        assert "Map State: IsViewable" in shown, shown
        assert watermark_text(running.seat).startswith("agent-handed-over \u00b7 ")


def test_the_seat_user_cannot_take_the_watermarks_pipes_with_pidfd_getfd() -> None:
    """Reopening through /proc is refused by the pipes' owner; copying the strip's own descriptors (pidfd_getfd, a
    ptrace-class access the same Unix user has by default) is refused because the strip is not dumpable, even to a
    seat-user process outside the seat's Landlock domain."""
    steal = (
        "import ctypes, os, sys; libc = ctypes.CDLL(None, use_errno=True); pidfd = os.pidfd_open(int(sys.argv[1])); "
        "copies = [libc.syscall(438, pidfd, fd, 0) for fd in (0, 1)]; sys.exit(0 if max(copies) >= 0 else 3)"
    )
    with running_seat() as running:
        tried = subprocess.run(
            ["/usr/bin/python3", "-c", steal, str(running.seat.watermark.pid)],
            user=running.seat.user.uid,
            group=running.seat.user.gid,
            extra_groups=[],
            capture_output=True,
            check=False,
            timeout=10,
        )
        assert tried.returncode == 3, tried


def test_app_runs_as_the_seat_user_not_root(seat: RunningSeat) -> None:
    uid = os.stat(f"/proc/{seat.seat.app.pid}").st_uid
    assert uid != 0
    assert pwd.getpwuid(uid).pw_name.startswith("sohoseat-")
    assert seat.seat.user.home.stat().st_uid == uid
    assert oct(seat.seat.user.home.stat().st_mode & 0o777) == "0o700"


def test_rfb_listens_on_loopback_only(seat: RunningSeat) -> None:
    listening = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    lines = [line for line in listening.splitlines() if f":{seat.seat.rfb_address.port} " in line]
    assert lines and all("127.0.0.1:" in line for line in lines), lines


def test_view_only_password_gets_a_frame_and_a_wrong_password_is_refused(seat: RunningSeat) -> None:
    assert wait_for_first_frame(seat.seat.rfb_address, seat.passwords.view_only) < 5
    with pytest.raises(SeatStartFailed, match="refused the password"):
        wait_for_first_frame(seat.seat.rfb_address, "wrongpw1")


def test_app_on_the_display_cannot_remote_control_x11vnc(seat: RunningSeat) -> None:
    """Without -noremote any X client could send `-R stop` (or switch the clipboard on) via X11VNC_REMOTE."""
    x_run(seat.seat, ["x11vnc", "-display", seat.seat.display.name, "-R", "stop"], as_seat_user=True)
    # x11vnc reads remote-control requests in its main loop, between the frames it serves: a frame served after
    # the request shows the request was read and ignored (x_run returned once the request was posted).
    assert wait_for_first_frame(seat.seat.rfb_address, seat.passwords.view_only) < 5
    assert seat.seat.x11vnc.poll() is None
    assert seat.seat.alive()


def test_a_viewer_that_asks_seldom_does_not_hold_up_the_agents_picture() -> None:
    """x11vnc times each new client's first updates to guess its link (rates.c, measure_send_rates); unless told the
    speeds, its main loop waits up to 5-15 s for that client to ask again, reading nobody's screen meanwhile. The
    screen wall asks every 2 s, the launch's held connection not at all: the agent's picture froze that long."""
    with running_seat() as running:
        wait_for_window(running.seat, "^Customer Console")
        address = running.seat.rfb_address
        agent = ScreenCopy(address, running.passwords.full_access)
        assert agent.refresh(5)
        changes: list[tuple[float, bytes]] = []
        stopped = threading.Event()

        def keep_asking() -> None:  # as noVNC does: the next request as soon as an update arrived
            while not stopped.is_set():
                if agent.refresh(0.05):
                    changes.append((time.monotonic(), bytes(agent.frame)))

        asking = threading.Thread(target=keep_asking, daemon=True)
        asking.start()
        try:
            time.sleep(1)  # the agent's own first updates timed, at the pace it asks
            seldom = ScreenCopy(address, running.passwords.view_only)
            assert seldom.refresh(5)  # its first picture; it asks for no other
            time.sleep(0.5)
            screen = screen_rgb(running.seat)
            seen = changes[-1][1] if changes else bytes(agent.frame)
            typed_at = time.monotonic()
            x_run(running.seat, ["xdotool", "mousemove", "700", "160", "click", "1", "type", "4711"])
            deadline = typed_at + 10
            while time.monotonic() < deadline and not any(at > typed_at and frame != seen for at, frame in changes):
                time.sleep(0.05)
            assert screen_rgb(running.seat) != screen, "the keys changed nothing on the seat's screen"
            shown_at = next((at for at, frame in changes if at > typed_at and frame != seen), None)
            assert shown_at is not None, "the agent's picture never showed the change"
            assert shown_at - typed_at < 2.0, f"the agent's picture showed the change after {shown_at - typed_at:.1f} s"
            seldom.close()
        finally:
            stopped.set()
            asking.join()
            agent.close()


def test_idle_seconds_resets_on_input(seat: RunningSeat) -> None:
    time.sleep(1.1)
    assert seat.seat.idle_seconds() >= 1.0
    x_run(seat.seat, ["xdotool", "mousemove", "300", "300"])
    assert seat.seat.idle_seconds() < 0.5


def test_killed_app_is_reported_as_a_crashed_seat() -> None:
    with running_seat() as running:
        assert running.seat.alive() and running.seat.failure() is None
        os.kill(running.seat.app.pid, signal.SIGKILL)
        running.seat.app.wait(timeout=5)
        assert not running.seat.alive()
        assert "application" in (running.seat.failure() or "")


def test_stop_leaves_no_process_user_or_file_behind() -> None:
    with running_seat() as running:
        seat = running.seat
        x_run(seat, ["touch", "/tmp/sohoseat-leftover-test"], as_seat_user=True)
        x_run(seat, ["sh", "-c", "echo x > $HOME/notes.txt"], as_seat_user=True)
        x_run(seat, ["ipcmk", "-M", "4096"], as_seat_user=True)  # as a killed x11vnc's MIT-SHM segment stays
        assert segments_of(seat.user.uid), "the seat user's shared memory segment should exist"
        clip = x_run(
            seat,
            ["xclip", "-selection", "clipboard", "-i"],
            as_seat_user=True,
            input="held",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            capture_output=False,
        )
        assert clip.returncode == 0
        user_pids = [int(p) for p in os.listdir("/proc") if p.isdigit() and _uid_of(p) == seat.user.uid]
        assert len(user_pids) >= 2, "the app and xclip should both run as the seat user"
        pids = [process.pid for process in seat.parts().values()] + user_pids
        seat.stop()
        assert not [pid for pid in pids if os.path.exists(f"/proc/{pid}") and _state(pid) != "Z"]
        with pytest.raises(KeyError):
            pwd.getpwnam(seat.user.name)
        assert not seat.user.home.exists()
        assert not seat.runtime_dir.exists()
        assert not os.path.exists("/tmp/sohoseat-leftover-test")
        assert segments_of(seat.user.uid) == []
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", seat.rfb_address.port), timeout=1).close()


def _uid_of(pid: str) -> int:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except FileNotFoundError:
        return -1


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"
