"""Helpers for the X11 seat tests: a real seat in a throw-away root, and ways to look at its display."""

import asyncio
import http.server
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from desktop_broker.rfb_auth import greet_browser, open_seat_connection
from desktop_broker.x11 import RfbAddress, SeatPasswords, SeatProcess, SeatSpec, bridge_websocket_to_rfb, start_seat
from desktop_broker.x11.rfb_relay import BufferedReceive
from policy.rules import DisplayRules
from policy.schema import SeatLimits
from policy.values import Destination

CONSOLE_ARGV = ["/usr/bin/python3", "-m", "desktop_broker.apps.customer_console"]
WATERMARK_LABEL = "agent-test-7"
NOTHING_ALLOWED = DisplayRules()
DEFAULT_LIMITS = SeatLimits()


@dataclass(frozen=True, slots=True)
class RunningSeat:
    seat: SeatProcess
    passwords: SeatPasswords
    root: Path
    rules: DisplayRules = NOTHING_ALLOWED


@contextmanager
def running_seat(
    rules: DisplayRules = NOTHING_ALLOWED,
    app_env: Mapping[str, str] | None = None,
    argv: Sequence[str] = CONSOLE_ARGV,
    limits: SeatLimits = DEFAULT_LIMITS,
    egress: tuple[Destination, ...] = (),
) -> Iterator[RunningSeat]:
    """A seat running the Customer Console (or `argv`); stopped and its directories removed even if the test fails."""
    root = Path(tempfile.mkdtemp(prefix="sohogw-x11-", dir="/var/tmp"))
    root.chmod(0o755)  # the seat user must traverse it to reach its home and the call-state file
    passwords = SeatPasswords.generate()
    spec = SeatSpec(argv, rules, WATERMARK_LABEL, passwords, app_env=dict(app_env or {}), limits=limits, egress=egress)
    try:
        seat = start_seat(spec, homes_root=root / "homes", runtime_root=root / "run")
        try:
            yield RunningSeat(seat, passwords, root, rules)
        finally:
            seat.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def x_run(
    seat: SeatProcess, argv: list[str], as_seat_user: bool = False, **kwargs: object
) -> "subprocess.CompletedProcess[str]":
    """Run an X client on the seat's display, as root or as the seat's own user (with the user's cookie)."""
    env = {**os.environ, **seat.x_environment()}
    user_options: dict[str, object] = {}
    if as_seat_user:
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(seat.user.home),
            "DISPLAY": seat.display.name,
            "XAUTHORITY": str(seat.user.home / ".Xauthority"),
        }
        user_options = {"user": seat.user.uid, "group": seat.user.gid, "extra_groups": []}
    options: dict[str, object] = {"capture_output": True, "text": True, "timeout": 10, **user_options, **kwargs}
    return subprocess.run(argv, env=env, check=False, **options)  # type: ignore[call-overload, no-any-return]


def wait_for_window(seat: SeatProcess, name_regex: str, timeout: float = 10.0) -> str:
    """The id of the first window whose title matches, waiting for the app to draw it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = x_run(seat, ["xdotool", "search", "--name", name_regex])
        if found.returncode == 0 and found.stdout.strip():
            return found.stdout.split()[0]
        time.sleep(0.1)
    titles = x_run(seat, ["xdotool", "search", "--name", "."]).stdout
    raise AssertionError(f"no window titled /{name_regex}/ on {seat.display.name} (windows: {titles!r})")


def watermark_text(seat: SeatProcess) -> str:
    """What the seat's watermark strip says: its window's name (WM_NAME, Latin-1), "label · YYYY-MM-DD HH:MM UTC"."""
    found = x_run(seat, ["xdotool", "search", "--classname", "^sohogw-watermark$"]).stdout.split()
    assert len(found) == 1, f"one watermark window expected, found {found}"
    named = x_run(seat, ["xdotool", "getwindowname", found[0]], text=False)
    return named.stdout.decode("latin-1").strip()  # type: ignore[union-attr]


def screen_rgb(seat: SeatProcess) -> bytes:
    """The whole X display as raw 8-bit RGB, captured by ImageMagick's `import` from the server itself."""
    result = x_run(seat, ["import", "-window", "root", "-depth", "8", "rgb:-"], text=False)
    assert result.returncode == 0, result.stderr
    return result.stdout  # type: ignore[return-value]


def pixels_near(rgb: bytes, width: int, rows: range, colour: tuple[int, int, int], tolerance: int = 40) -> int:
    """How many pixels in the given rows are within `tolerance` of `colour` on every channel."""
    count = 0
    for offset in range(rows.start * width * 3, rows.stop * width * 3, 3):
        r, g, b = rgb[offset], rgb[offset + 1], rgb[offset + 2]
        if abs(r - colour[0]) <= tolerance and abs(g - colour[1]) <= tolerance and abs(b - colour[2]) <= tolerance:
            count += 1
    return count


def pointer_location(seat: SeatProcess) -> str:
    return x_run(seat, ["xdotool", "getmouselocation"]).stdout.strip()


VIEWER_PAGE = """<!doctype html>
<html><body style="margin:0"><div id="screen"></div>
<script type="module">
import RFB from "/novnc/core/rfb.js";
const params = new URLSearchParams(location.search);
window.clipboardReceived = [];
window.connected = false;
const rfb = new RFB(document.getElementById("screen"), params.get("ws"));
rfb.addEventListener("connect", () => { window.connected = true; });
rfb.addEventListener("clipboard", (event) => window.clipboardReceived.push(event.detail.text));
window.rfb = rfb;
</script></body></html>
"""


@contextmanager
def viewer_page_server() -> Iterator[str]:
    """One origin serving a test page and noVNC's own files from /usr/share/novnc (as the gateway will)."""
    root = Path(tempfile.mkdtemp(prefix="sohogw-novnc-"))
    (root / "viewer.html").write_text(VIEWER_PAGE)
    (root / "novnc").symlink_to("/usr/share/novnc")

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        shutil.rmtree(root, ignore_errors=True)


def bridge_path(address: RfbAddress, password: str, rules: DisplayRules) -> str:
    """The path of `websocket_bridge_server`'s endpoint for one seat, VNC password and display rules."""
    return f"/rfb/{address.port}/{password}/{int(rules.clipboard_in)}{int(rules.clipboard_out)}"


@contextmanager
def websocket_bridge_server() -> Iterator[str]:
    """A websocket endpoint (`bridge_path`) bridged to x11vnc as the gateway bridges it (no websockify): it passes
    x11vnc's VNC authentication itself, offers the browser none, and relays cut text as the given rules allow."""

    async def handle(websocket: ServerConnection) -> None:
        assert websocket.request is not None
        port, password, clipboard = websocket.request.path.split("/")[2:]
        rules = DisplayRules(clipboard_in=clipboard[0] == "1", clipboard_out=clipboard[1] == "1")

        async def receive() -> bytes | None:
            try:
                message = await websocket.recv()
            except ConnectionClosed:
                return None
            return message if isinstance(message, bytes) else message.encode()

        browser = BufferedReceive(receive)
        address = RfbAddress("127.0.0.1", int(port))
        seat = await open_seat_connection(address, password)
        greeting = greet_browser(browser, websocket.send)
        reopen = partial(open_seat_connection, address, password, ask_first_update=False)
        await bridge_websocket_to_rfb(browser, websocket.send, seat, rules, greeting, reopen)

    loop = asyncio.new_event_loop()
    ready: asyncio.Future[int] = loop.create_future()
    stop = asyncio.Event()

    async def run() -> None:
        async with serve(handle, "127.0.0.1", 0) as server:
            ready.set_result(server.sockets[0].getsockname()[1])
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()
    try:
        port = asyncio.run_coroutine_threadsafe(_wait(ready), loop).result(timeout=10)
        yield f"ws://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
        loop.close()


async def _wait(future: "asyncio.Future[int]") -> int:
    return await future
