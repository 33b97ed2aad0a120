"""Login → first frame of the agent app through the gateway, on a warm pool and on a cold start.

Each round signs agent1 in through the portal (client certificate forwarded by a trusted proxy), opens
the launch page, opens the seat websocket with the one-time token and speaks RFB as noVNC does (the
gateway authenticates to x11vnc; the client sees "no auth") until the first FramebufferUpdate. The next
round's login replaces the session, which ends and recycles the seat. Baseline in the same process: a
bare Xvfb start. Also: PSS per X11 seat with several running, and seats started before the cap refuses.

    .venv/bin/python -m bench.bench_launch --rounds 10
"""

import argparse
import re
import statistics
import struct
import tempfile
import time
from pathlib import Path

from websockets.sync.client import ClientConnection, connect

from bench.bench_seats import bench_bare_xvfb, percentile
from desktop_broker.x11.rfb_first_update import first_request
from gateway.db import make_engine
from gateway.migrate import upgrade
from gateway.seats.errors import NoSeatFree
from gateway.sessions.deps import SESSION_COOKIE
from policy import DisplayRules, load_default_policy
from tests.gateway.seats.conftest import SeatPortal, seat_portal


class _Stream:
    def __init__(self, socket: ClientConnection) -> None:
        self.socket, self.pending = socket, b""

    def read(self, size: int) -> bytes:
        while len(self.pending) < size:
            message = self.socket.recv(timeout=10)
            self.pending += message if isinstance(message, bytes) else message.encode()
        data, self.pending = self.pending[:size], self.pending[size:]
        return data


def first_frame_through_gateway(portal: SeatPortal, token: str, cookie: str) -> None:
    url = portal.base_url.replace("http", "ws") + f"/seats/ws?token={token}"
    with connect(url, additional_headers={"Cookie": f"{SESSION_COOKIE}={cookie}"}, max_size=None) as socket:
        stream = _Stream(socket)
        version = stream.read(12)
        socket.send(version)
        assert stream.read(2) == b"\x01\x01", "the gateway must offer only 'no authentication'"
        socket.send(b"\x01")
        assert stream.read(4) == b"\0\0\0\0"
        socket.send(b"\x01")
        width, height = struct.unpack(">HH", stream.read(4))
        stream.read(16)
        stream.read(struct.unpack(">I", stream.read(4))[0])
        socket.send(first_request(width, height))  # as noVNC asks, so the gateway's first picture is this client's
        while (kind := stream.read(1)[0]) != 0:  # x11vnc's clipboard capabilities may come before the picture
            assert kind == 3, f"unexpected RFB message {kind} before the first picture"
            stream.read(abs(struct.unpack(">3xi", stream.read(7))[0]))


def login_to_first_frame(portal: SeatPortal, rounds: int, warm: bool) -> list[tuple[float, float, float]]:
    """Per round: (sign-in done, launch page served, first frame), seconds since the round started."""
    durations = []
    for _ in range(rounds):
        if warm:
            portal.broker.reconcile()
            while portal.broker.pool is not None and portal.broker.pool.count()[1] < 1:
                time.sleep(0.02)
        started = time.monotonic()
        with portal.signed_in("agent1") as client:
            signed_in = time.monotonic() - started
            agent_page = client.get("/agent", headers={"accept": "text/html"})
            csrf = re.search(r'name="csrf" value="([^"]+)"', agent_page.text)
            assert csrf, agent_page.text
            page = client.post("/agent/apps/customer-console/launch", data={"csrf": csrf.group(1)})
            launched = time.monotonic() - started
            token = re.search(r'data-token="([^"]+)"', page.text)
            assert token, page.text
            first_frame_through_gateway(portal, token.group(1), client.cookies[SESSION_COOKIE])
            durations.append((signed_in, launched, time.monotonic() - started))
    return durations


def seats_before_cap(portal: SeatPortal) -> tuple[int, float]:
    """Assign seats until the pool refuses; returns the count and the mean PSS (MiB) per seat meanwhile."""
    app = load_default_policy().app("customer-console")
    taken: list[tuple[str, str]] = []
    try:
        while True:
            try:
                taken.append(portal.broker.assign(app, DisplayRules(), holder=f"bench-{len(taken)}", label="bench"))  # type: ignore[arg-type]
            except NoSeatFree:
                break
        pool = portal.broker.pool
        assert pool is not None
        sizes = [sum(seat.process.pss_kib().values()) for seat_id, _ in taken if (seat := pool.get(seat_id))]
        return len(taken), statistics.mean(sizes) / 1024
    finally:
        for seat_id, _ in taken:
            portal.broker.release(seat_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--cap", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sohogw-bench-launch-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        bare, _ = bench_bare_xvfb(args.rounds, root)
        results = {}
        for label, warm in (("warm pool", 1), ("cold start", 0)):
            url = f"sqlite:///{root / f'{warm}.db'}"
            upgrade(url)
            engine = make_engine(url)
            (root / f"p{warm}").mkdir()
            with seat_portal(root / f"p{warm}", url, engine, warm=warm, cap=args.cap) as portal:
                login_to_first_frame(portal, 1, bool(warm))  # first round warms Python's imports and caches
                results[label] = login_to_first_frame(portal, args.rounds, bool(warm))
                if warm:
                    count, mib = seats_before_cap(portal)
            engine.dispose()
    base = statistics.median(bare)
    print(f"baseline bare Xvfb start: p50 {base * 1000:.0f} ms, p95 {percentile(bare, 0.95) * 1000:.0f} ms")
    for label, rounds in results.items():
        total = [r[2] for r in rounds]
        p50, p95 = statistics.median(total), percentile(total, 0.95)
        print(f"login → first frame, {label}: p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms", end=" ")
        print(f"({p50 / base:.1f}× baseline)")
        sign_in = statistics.median(r[0] for r in rounds)
        launch = statistics.median(r[1] - r[0] for r in rounds)
        frame = statistics.median(r[2] - r[1] for r in rounds)
        print(f"  of which p50: sign-in {sign_in * 1000:.0f} ms, launch page {launch * 1000:.0f} ms, ", end="")
        print(f"websocket → first frame {frame * 1000:.0f} ms")
    print(f"seats assigned before the cap ({args.cap}) refused, besides the one still held: {count}; ", end="")
    print(f"PSS per X11 seat with {count + 1} running: {mib:.1f} MiB")


if __name__ == "__main__":
    main()
