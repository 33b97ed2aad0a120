"""A recorded X11 seat, played back in Chromium: what the seat showed is what the player draws, at the right time.

Real components: the X11 seat (Xvfb, x11vnc, the Customer Console), the real guacd 1.6.0 that the gateway's
recorder connects to read-only, the sealed file on disk, guacamole-common-js's Guacamole.SessionRecording in
Debian's Chromium, and the supervisor's session. A refused playback is a 404 with an audit row.
"""

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page
from sqlmodel import Session, col, select

from desktop_broker.recording.sealing import MAGIC
from desktop_broker.x11.seat import SeatProcess
from gateway.db import session_scope
from gateway.seats import service
from gateway.seats.models import RecordingState, ScreenRecording, SeatEndReason, SeatLease
from gateway.seats.settings import RecordingSettings
from gateway.sessions.models import HomeSession
from tests.desktop_broker.x11_fixtures import screen_rgb, wait_for_window
from tests.gateway.seats.conftest import (
    TWO_APPS_POLICY,
    SeatPortal,
    audit_trail,
    browser_context,
    launch_in_browser,
    seat_of,
    seat_portal_on_sqlite,
)
from tests.support.guacd import RealGuacd
from tests.support.portal import PROXY_SECRET

pytestmark = pytest.mark.e2e
RECORDED_POLICY = TWO_APPS_POLICY.replace("    roles: [agent]\n", "    roles: [agent]\n    recording: true\n", 1)
MAGENTA = (255, 0, 255)
SQUARE = (100, 100, 300, 200)
"""x, y, width, height of the magenta window the test puts on the seat."""
MAGENTA_WINDOW = (
    "import tkinter as tk; root = tk.Tk(); root.overrideredirect(True); "
    f"root.geometry('{SQUARE[2]}x{SQUARE[3]}+{SQUARE[0]}+{SQUARE[1]}'); root.configure(bg='#ff00ff'); root.mainloop()"
)
SQUARE_CENTRE = (SQUARE[0] + SQUARE[2] // 2, SQUARE[1] + SQUARE[3] // 2)
PIXEL_AT = """([x, y]) => Array.from(window.recordingDisplay.flatten().getContext('2d').getImageData(x, y, 1, 1).data
  .slice(0, 3))"""


@pytest.fixture(scope="module")
def guacd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealGuacd]:
    running = RealGuacd(tmp_path_factory.mktemp("guacd-recording"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def recordings_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("recordings")


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory, guacd: RealGuacd, recordings_root: Path) -> Iterator[SeatPortal]:
    recording = RecordingSettings(
        in_progress_dir=recordings_root / "in-progress",
        sealed_dir=recordings_root / "sealed",
        key_file=recordings_root / "recordings.key",
        guacd_address=f"127.0.0.1:{guacd.port}",
    )
    with seat_portal_on_sqlite(
        tmp_path_factory, "recording-portal", warm=1, cap=4, policy=RECORDED_POLICY, recording=recording
    ) as running:
        yield running


@pytest.fixture(scope="module")
def browser_and_supervisor(portal: SeatPortal, browser: Browser) -> Iterator[BrowserContext]:
    with portal.signed_in("sup1") as sup1:
        context = browser_context(portal, browser, sup1)
        try:
            yield context
        finally:
            context.close()


def _until(check: object, seconds: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(step)
    return False


def _near(pixel: object, colour: tuple[int, int, int], tolerance: int = 30) -> bool:
    return all(abs(int(a) - b) <= tolerance for a, b in zip(pixel, colour, strict=True))  # type: ignore[call-overload]


def _pixel(seat: SeatProcess, at: tuple[int, int]) -> bytes:
    offset = (at[1] * 1280 + at[0]) * 3
    return screen_rgb(seat)[offset : offset + 3]


def _recordings(portal: SeatPortal) -> list[ScreenRecording]:
    with Session(portal.engine) as db:
        return list(db.exec(select(ScreenRecording).order_by(col(ScreenRecording.started_at))))


def _record_the_agent_showing_magenta(portal: SeatPortal, browser: Browser, recordings_root: Path) -> ScreenRecording:
    """agent1 opens the console (recorded by policy); a magenta window shows for ~4 s; the seat ends; sealed."""
    with portal.signed_in("agent1") as agent1:
        context = browser_context(portal, browser, agent1)
        try:
            page: Page = context.new_page()
            launch_in_browser(page, portal)
            page.wait_for_function("window.seatConnected === true", timeout=10_000)
            seat = seat_of(portal, "agent1")
            wait_for_window(seat.process, "^Customer Console")
            portal.broker.reconcile_recordings()
            assert _until(lambda: any(r.state is RecordingState.RECORDING for r in _recordings(portal)), 10)
            recording = _recordings(portal)[-1]
            in_progress = recordings_root / "in-progress"
            assert (in_progress.stat().st_mode & 0o777) == 0o700
            written = in_progress / recording.file_name  # once guacd's VNC connection to the seat is up
            assert _until(lambda: written.exists() and written.stat().st_size > 1000, 10), _recordings(portal)
            time.sleep(1.5)
            square = subprocess.Popen(
                ["python3", "-c", MAGENTA_WINDOW], env={**os.environ, **seat.process.x_environment()}
            )
            # One capture at a time: ImageMagick's `import` grabs the X server, and polling it stalls x11vnc
            # (and so every viewer and the recording) for as long as the polling lasts.
            try:
                time.sleep(2.0)
                assert _near(_pixel(seat.process, SQUARE_CENTRE), MAGENTA, 5), "the magenta window is not shown"
                time.sleep(2.0)
            finally:
                before_gone = (in_progress / recording.file_name).stat().st_size
                square.kill()
                square.wait()
            # guacd writes a frame as soon as x11vnc sends it (~0.1 s here); the deadline only allows for a loaded
            # machine. Whether that frame shows the window gone is for the playback below to say.
            assert _until(lambda: (in_progress / recording.file_name).stat().st_size > before_gone, 15, 0.05)
            time.sleep(0.5)
            assert not _near(_pixel(seat.process, SQUARE_CENTRE), MAGENTA, 60), "the magenta window did not go"
        finally:
            context.close()  # before the seat ends: an open seat page would reconnect and be given a new seat
        with session_scope(portal.engine) as db:
            lease = db.exec(select(SeatLease).where(SeatLease.id == recording.lease_id)).one()
            service.end_seat(db, lease, SeatEndReason.SESSION_ENDED, portal.clock())

    def sealed() -> ScreenRecording | None:
        portal.broker.reconcile_recordings()
        now = next(r for r in _recordings(portal) if r.id == recording.id)
        return now if now.state is RecordingState.SEALED else None

    assert _until(sealed, 20, 0.5), _recordings(portal)
    return next(r for r in _recordings(portal) if r.id == recording.id)


@pytest.fixture(scope="module")
def recording(portal: SeatPortal, browser: Browser, recordings_root: Path) -> ScreenRecording:
    """The module's one recording, sealed: both tests play it (or are refused it)."""
    return _record_the_agent_showing_magenta(portal, browser, recordings_root)


def test_a_recorded_seat_plays_back_in_chromium_showing_what_was_on_its_screen(
    portal: SeatPortal, recording: ScreenRecording, browser_and_supervisor: BrowserContext, recordings_root: Path
) -> None:
    sealed_file = recordings_root / "sealed" / f"{recording.id}.rec"
    assert sealed_file.read_bytes().startswith(MAGIC) and b"png" not in sealed_file.read_bytes()
    assert (sealed_file.stat().st_mode & 0o777) == 0o600
    assert not (recordings_root / "in-progress" / recording.file_name).exists(), "the plaintext is gone once sealed"
    assert [e.outcome for e in audit_trail(portal, "recording.start")] == ["started"]
    assert [e.target for e in audit_trail(portal, "recording.seal")] == [recording.id]

    player = browser_and_supervisor.new_page()
    player.goto(f"{portal.base_url}/supervision/agents/{recording.session_id}/recordings/{recording.id}")
    player.wait_for_function("window.recordingLoaded === true", timeout=30_000)
    duration = player.evaluate("window.recordingDuration")
    assert 3_000 < duration < 60_000, duration  # frames only while something changes: ~1.5 s + 2 s magenta + after
    centre = list(SQUARE_CENTRE)
    shown = []
    for position in range(0, duration, 250):
        player.evaluate("(position) => window.seekTo(position)", position)
        shown.append(_near(player.evaluate(PIXEL_AT, centre), MAGENTA))
    player.evaluate("(position) => window.seekTo(position)", duration)
    at_the_end = player.evaluate(PIXEL_AT, centre)
    assert any(shown), "the magenta window the seat showed never appears in the playback"
    assert not shown[0] and not _near(at_the_end, MAGENTA, 60), "magenta before it was drawn or after it was gone"
    first, last = shown.index(True), len(shown) - 1 - shown[::-1].index(True)
    assert all(shown[first : last + 1]) and 1.5 <= (last - first + 1) * 0.25 <= 6.0, shown
    played = audit_trail(portal, "recording.play")
    assert [(e.actor, e.target, e.outcome) for e in played] == [("sup1", recording.id, "played")]
    player.close()


def test_an_unauthorised_playback_is_refused_with_404_and_audited(
    portal: SeatPortal, recording: ScreenRecording, browser_and_supervisor: BrowserContext
) -> None:
    before = len(audit_trail(portal, "recording.play"))
    with portal.signed_in("sup1") as sup1:
        with Session(portal.engine) as db:
            others = db.exec(select(HomeSession.id).where(HomeSession.id != recording.session_id)).all()
        assert others
        sup1.headers.update({"X-Forwarded-For": "198.51.100.9", "X-Sohogw-Proxy-Secret": PROXY_SECRET})  # via proxy
        wrong_agent = sup1.get(f"/supervision/agents/{others[0]}/recordings/{recording.id}/data")
        right = sup1.get(f"/supervision/agents/{recording.session_id}/recordings/{recording.id}/data")
        unknown = sup1.get(f"/supervision/agents/{recording.session_id}/recordings/{'f' * 32}/data")
    assert (wrong_agent.status_code, unknown.status_code) == (404, 404)
    assert right.status_code == 200 and right.content.startswith(b"4."), right.content[:40]
    with portal.signed_in("agent1") as agent1:
        assert (
            agent1.get(f"/supervision/agents/{recording.session_id}/recordings/{recording.id}/data").status_code == 403
        )
    trail = [(e.target, e.outcome, e.source) for e in audit_trail(portal, "recording.play")[before:]]
    # The other session is not an agent of sup1's teams: refused by the route's team scope (audited there, 404 like an
    # unknown one) before the recordings are asked. Both rows name the browser's address the proxy forwarded.
    assert trail == [(recording.id, "played", "198.51.100.9"), ("f" * 32, "refused", "198.51.100.9")]
    scope = [(e.outcome, e.detail) for e in audit_trail(portal, "supervision.scope")]
    assert any(others[0][:64] in detail for _outcome, detail in scope), scope
