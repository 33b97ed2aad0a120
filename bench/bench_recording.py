"""Bench: what recording an X11 seat costs the agent, how big recordings get, and how fast a long one plays.

Run as root inside a network namespace: `ip netns exec NS .venv/bin/python -m bench.bench_recording --rounds 6`.
Real components: X11 seats (Xvfb, x11vnc, the Customer Console), guacd 1.6.0 (SOHOGW_GUACD or /opt/guacd), the
gateway's recorder, Debian's Chromium with guacamole-common-js.

1. Agent's first frame and frame latency, seats recorded against seats not recorded, alternating in one run
   (bench/interleave.py). First frame: an RFB client with the agent's password connects to a fresh seat and asks for
   the whole screen. Frame latency: a small Tk window on the seat changes colour on command; the time until the
   agent's RFB client receives the update.
2. Size per seat-hour: a recorded seat with a change every second for `--minutes`, extrapolated to an hour (said so).
3. A 1-hour recording made by repeating that recording's instructions with timestamps shifted (said so), sealed:
   decryption time, then in Chromium the time until `Guacamole.SessionRecording` has loaded it and seek times.
"""

import argparse
import http.server
import os
import re
import shutil
import socket
import statistics
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.interleave import alternate
from desktop_broker.recording.guacd_recorder import GuacdRecorder, RecordingTarget
from desktop_broker.recording.sealing import open_sealed, seal_file
from desktop_broker.x11 import SeatPasswords, SeatProcess, SeatSpec, start_seat
from desktop_broker.x11.rfb_probe import vnc_auth_response
from policy.rules import DisplayRules
from tests.support.browser import chromium
from tests.support.cgroups import ensure_cgroup_hierarchies
from tests.support.guacd import RealGuacd

CONSOLE_ARGV = ["/usr/bin/python3", "-m", "desktop_broker.apps.customer_console"]
SWATCH = (
    "import sys, tkinter as tk\n"
    "root = tk.Tk(); root.overrideredirect(True); root.geometry('200x150+500+300'); root.configure(bg='#000000')\n"
    "def step():\n"
    "    line = sys.stdin.readline()\n"
    "    if line: root.configure(bg=line.strip()); root.update(); root.after(1, step)\n"
    "root.after(200, step); root.mainloop()\n"
)
GUACAMOLE_JS = Path(__file__).resolve().parents[1] / "deploy/guacamole-lite/node_modules/guacamole-common-js/dist/esm"


class AgentView:
    """An RFB client with the agent's password that keeps asking for incremental updates (raw encoding)."""

    def __init__(self, seat: SeatProcess, password: str) -> None:
        address = seat.rfb_address
        started = time.monotonic()
        self.sock = socket.create_connection((address.host, address.port), timeout=10)
        self._recv(12)
        self.sock.sendall(b"RFB 003.008\n")
        self._recv(self._recv(1)[0])
        self.sock.sendall(b"\x02")
        self.sock.sendall(vnc_auth_response(password, self._recv(16)))
        assert struct.unpack(">I", self._recv(4))[0] == 0, "password refused"
        self.sock.sendall(b"\x01")
        self.width, self.height = struct.unpack(">HH", self._recv(4))
        self.bpp = self._recv(16)[0] // 8
        self._recv(struct.unpack(">I", self._recv(4))[0])
        self.sock.sendall(struct.pack(">BxHi", 2, 1, 0))
        self.request(incremental=False)
        self.next_update()
        self.first_frame = time.monotonic() - started

    def _recv(self, count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = self.sock.recv(count - len(data))
            if not chunk:
                raise ConnectionError("x11vnc closed the connection")
            data += chunk
        return data

    def request(self, incremental: bool = True) -> None:
        self.sock.sendall(struct.pack(">BBHHHH", 3, int(incremental), 0, 0, self.width, self.height))

    def next_update(self) -> list[tuple[int, int, int, int]]:
        """Read messages until a FramebufferUpdate; its rectangles."""
        while True:
            kind = self._recv(1)[0]
            if kind == 0:
                self._recv(1)
                rects = []
                for _ in range(struct.unpack(">H", self._recv(2))[0]):
                    x, y, w, h, encoding = struct.unpack(">HHHHi", self._recv(12))
                    if encoding == 0:
                        self._recv(w * h * self.bpp)
                    rects.append((x, y, w, h))
                return rects
            if kind == 2:
                continue
            if kind == 3:
                self._recv(3)
                self._recv(struct.unpack(">I", self._recv(4))[0])

    def close(self) -> None:
        self.sock.close()


@contextmanager
def seat(root: Path, index: int) -> Iterator[tuple[SeatProcess, SeatPasswords]]:
    passwords = SeatPasswords.generate()
    spec = SeatSpec(CONSOLE_ARGV, DisplayRules(), "bench-agent", passwords)
    process = start_seat(spec, homes_root=root / f"homes-{index}", runtime_root=root / f"run-{index}")
    try:
        yield process, passwords
    finally:
        process.stop()


def swatch(process: SeatProcess) -> subprocess.Popen[str]:
    env = {**os.environ, **process.x_environment()}
    return subprocess.Popen(["python3", "-c", SWATCH], env=env, stdin=subprocess.PIPE, text=True)


def frame_latencies(view: AgentView, painter: subprocess.Popen[str], changes: int) -> list[float]:
    """Colour changes in the swatch's area → the agent's update covering it; seconds each."""
    assert painter.stdin is not None
    latencies = []
    time.sleep(1.0)  # the swatch is mapped and drawn
    for step in range(changes):
        view.request()
        started = time.monotonic()
        painter.stdin.write(("#ff00ff" if step % 2 == 0 else "#00ff00") + "\n")
        painter.stdin.flush()
        while not any(x <= 600 < x + w and y <= 375 < y + h for x, y, w, h in view.next_update()):
            view.request()
        latencies.append(time.monotonic() - started)
        time.sleep(0.3)
    return latencies


def measure(
    root: Path, guacd: RealGuacd, recorded: bool, counter: list[int], changes: int
) -> tuple[float, list[float]]:
    counter[0] += 1
    with seat(root, counter[0]) as (process, passwords):
        recorder = None
        if recorded:
            address = process.rfb_address
            target = RecordingTarget(address.host, address.port, passwords.view_only, root / "rec", f"r{counter[0]}")
            recorder = GuacdRecorder("127.0.0.1", guacd.port, target)
            recorder.start()
        time.sleep(1.0)  # the console has drawn; the recorder's first full frame is behind it
        view = AgentView(process, passwords.full_access)
        painter = swatch(process)
        try:
            return view.first_frame, frame_latencies(view, painter, changes)
        finally:
            painter.kill()
            painter.wait()
            view.close()
            if recorder is not None:
                recorder.stop()


def p(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def record_for(root: Path, guacd: RealGuacd, seconds: float) -> Path:
    """A recorded seat whose swatch changes colour every second, like an agent's screen moving on."""
    with seat(root, 999) as (process, passwords):
        address = process.rfb_address
        target = RecordingTarget(address.host, address.port, passwords.view_only, root / "rec", "long")
        recorder = GuacdRecorder("127.0.0.1", guacd.port, target)
        recorder.start()
        painter = swatch(process)
        assert painter.stdin is not None
        try:
            deadline, step = time.monotonic() + seconds, 0
            while time.monotonic() < deadline:
                painter.stdin.write(f"#{(step * 40503) % 0xFFFFFF:06x}\n")
                painter.stdin.flush()
                step += 1
                time.sleep(1.0)
        finally:
            painter.kill()
            painter.wait()
            recorder.stop()
    time.sleep(1.0)  # guacd frees the connection and closes the file
    return root / "rec" / "long"


def one_hour_from(sample: Path, target: Path) -> float:
    """Repeat the sample's instructions after its first sync, timestamps shifted, until an hour; its duration (s)."""
    text = sample.read_text()
    first = text.index("4.sync,")
    head, body = text[:first], text[first:]
    stamps = [int(s) for s in re.findall(r"4\.sync,\d+\.(\d+)", body)]
    span = stamps[-1] - stamps[0] + 1000
    with target.open("w") as out:
        out.write(head)
        shift = 0
        while shift < 3_600_000:
            out.write(_shifted(body, shift))
            shift += span
    return shift / 1000


def _shifted(body: str, shift: int) -> str:
    def sync(match: re.Match[str]) -> str:
        stamp = str(int(match.group(2)) + shift)
        return f"4.sync,{len(stamp)}.{stamp}"

    return re.sub(r"4\.sync,(\d+)\.(\d+)", sync, body)


PLAYER = """<!doctype html><html><body><div id="screen"></div><script type="module">
import Guacamole from "/guacamole-common.js";
const started = performance.now();
const recording = new Guacamole.SessionRecording(new Guacamole.StaticHTTPTunnel("/recording"));
document.getElementById("screen").appendChild(recording.getDisplay().getElement());
recording.onload = () => { window.loadedMs = performance.now() - started; window.duration = recording.getDuration(); };
recording.onprogress = () => {
  if (window.firstProgressMs === undefined) window.firstProgressMs = performance.now() - started; };
window.seekMs = (position) => new Promise((resolve) => { const t = performance.now();
  recording.seek(position, () => resolve(performance.now() - t)); });
recording.connect();
</script></body></html>"""


@contextmanager
def static_origin(recording: Path) -> Iterator[str]:
    files = {
        "/": (PLAYER.encode(), "text/html"),
        "/guacamole-common.js": ((GUACAMOLE_JS / "guacamole-common.js").read_bytes(), "text/javascript"),
    }

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body, kind = files.get(self.path) or (recording.read_bytes(), "application/octet-stream")
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--changes", type=int, default=10)
    parser.add_argument("--minutes", type=float, default=2.0)
    arguments = parser.parse_args()
    ensure_cgroup_hierarchies()
    root = Path(tempfile.mkdtemp(prefix="sohogw-bench-rec-", dir="/var/tmp"))
    root.chmod(0o755)
    guacd = RealGuacd(root)
    try:
        counter = [0]
        results = alternate(
            {
                "not recorded": lambda: measure(root, guacd, False, counter, arguments.changes),
                "recorded": lambda: measure(root, guacd, True, counter, arguments.changes),
            },
            arguments.rounds,
        )
        print(
            f"agent's view of a seat, {arguments.rounds} seats each, alternating, {arguments.changes} changes per seat"
        )
        for name, runs in results.items():
            firsts = [first for first, _ in runs]
            latencies = [latency for _, each in runs for latency in each]
            print(
                f"  {name:13s} first frame p50 {statistics.median(firsts) * 1000:6.1f} ms  "
                f"frame latency p50 {p(latencies, 0.5) * 1000:6.1f} ms  p95 {p(latencies, 0.95) * 1000:6.1f} ms"
            )

        sample = record_for(root, guacd, arguments.minutes * 60)
        size = sample.stat().st_size
        key = os.urandom(32)
        sealed = root / "sample.rec"
        sealed_size = seal_file(key, "sample", sample, sealed)
        per_hour = 60 / arguments.minutes
        print(
            f"size: {size / 1024:.0f} KiB plaintext, {sealed_size / 1024:.0f} KiB sealed for {arguments.minutes:g} min "
            f"with a change every second → extrapolated ×{per_hour:g}: {size * per_hour / 2**20:.1f} MiB per seat-hour"
        )

        hour = root / "hour"
        duration = one_hour_from(sample, hour)
        hour_sealed = root / "hour.rec"
        started = time.monotonic()
        seal_file(key, "hour", hour, hour_sealed)
        seal_seconds = time.monotonic() - started
        started = time.monotonic()
        opened = sum(len(chunk) for chunk in open_sealed(key, "hour", hour_sealed))
        decrypt_seconds = time.monotonic() - started
        print(
            f"1-hour recording (the sample's instructions repeated with shifted timestamps): {duration / 60:.0f} min, "
            f"{opened / 2**20:.1f} MiB; sealing {seal_seconds:.2f} s, decrypting {decrypt_seconds:.2f} s"
        )
        with static_origin(hour) as origin, chromium() as browser:
            page = browser.new_page()
            page.goto(origin + "/")
            page.wait_for_function("window.loadedMs !== undefined", timeout=600_000)
            loaded, first = page.evaluate("window.loadedMs"), page.evaluate("window.firstProgressMs")
            total = page.evaluate("window.duration")
            seeks = [page.evaluate("(p) => window.seekMs(p)", int(total * f)) for f in (0.9, 0.1, 0.5, 0.99, 0.3, 0.7)]
            print(
                f"player (Chromium, guacamole-common-js): first frames after {first:.0f} ms, "
                f"fully loaded {loaded:.0f} ms;"
                f" seek p50 {statistics.median(seeks):.0f} ms, max {max(seeks):.0f} ms ({len(seeks)} seeks)"
            )
    finally:
        guacd.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
