"""The agent's seat viewer in Chromium: how long a window resize takes to refit the seat, and how long the page takes
to reconnect by itself after its websocket dropped, each beside a baseline measured in alternation.

Resize: from Playwright's viewport change to the canvas scaled to the new stage with the watermark laid over it;
baseline: the same viewport change until the window reports its new width (Playwright's and the browser's own
share, which the refit cannot beat). Reconnect: from the websocket closing to noVNC's next "connect" (a fresh
one-time token fetched from the gateway, the same seat), timed by the page; baseline: the person's way without it,
back to the workspace and a click on the app until connected.

    ip netns exec NS .venv/bin/python -m bench.bench_seat_viewer --rounds 10
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Page

from bench.bench_seats import percentile
from bench.interleave import alternate
from gateway.db import make_engine
from gateway.migrate import upgrade
from gateway.sessions.deps import SESSION_COOKIE
from tests.gateway.seats.conftest import TWO_APPS_POLICY, SeatPortal, launch_in_browser, seat_portal
from tests.support.browser import chromium
from tests.support.cgroups import ensure_cgroup_hierarchies

WINDOWS = ((1280, 720), (1920, 1080))
FITTED = """([width, height]) => {
  if (innerWidth !== width || innerHeight !== height) return false;
  const c = document.querySelector('#screen canvas').getBoundingClientRect();
  const s = document.getElementById('stage').getBoundingClientRect();
  const m = document.getElementById('watermark').getBoundingClientRect();
  return Math.abs(c.height - s.height) < 1.5 && Math.abs(m.width - c.width) < 1 && Math.abs(m.left - c.left) < 1;
}"""


def resize(page: Page, window: tuple[int, int], fitted: bool) -> float:
    """Milliseconds from the viewport change until the seat is refitted (or, for the baseline, the window resized)."""
    started = time.perf_counter()
    page.set_viewport_size({"width": window[0], "height": window[1]})
    condition = FITTED if fitted else "([width, height]) => innerWidth === width && innerHeight === height"
    page.wait_for_function(condition, arg=list(window), polling="raf", timeout=10_000)
    return (time.perf_counter() - started) * 1000


def reconnect(page: Page) -> float:
    """Milliseconds, timed by the page, from the dropped websocket to the seat connected again."""
    count = page.evaluate("window.seatTimings.reconnects.length")
    page.evaluate("window.rfb._sock._websocket.close()")
    page.wait_for_function(f"window.seatTimings.reconnects.length === {count + 1}", timeout=15_000)
    page.wait_for_function("window.seatConnected === true", timeout=15_000)
    return float(page.evaluate(f"window.seatTimings.reconnects[{count}]"))


def relaunch(page: Page, portal: SeatPortal) -> float:
    """Milliseconds for the way back without reconnection: the workspace, the app's button, connected."""
    started = time.perf_counter()
    launch_in_browser(page, portal)
    page.wait_for_function("window.seatConnected === true", timeout=15_000)
    return (time.perf_counter() - started) * 1000


def summary(name: str, values: list[float]) -> str:
    return (
        f"{name:<34} p50 {statistics.median(values):7.1f} ms   p95 {percentile(values, 95):7.1f} ms   n={len(values)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    rounds = parser.parse_args().rounds
    ensure_cgroup_hierarchies()  # seats need their cgroups, which `ip netns exec` hides
    with tempfile.TemporaryDirectory(prefix="bench-seat-viewer-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'sohogw.db'}"
        upgrade(url)
        engine = make_engine(url)
        with (
            seat_portal(Path(tmp), url, engine, warm=1, cap=4, policy=TWO_APPS_POLICY) as portal,
            chromium() as browser,
            portal.signed_in("agent1") as client,
        ):
            context = browser.new_context(viewport={"width": 1280, "height": 720})
            cookie = {"name": SESSION_COOKIE, "value": client.cookies[SESSION_COOKIE], "url": portal.base_url}
            context.add_cookies([cookie])  # type: ignore[list-item]
            page = context.new_page()
            relaunch(page, portal)
            sizes = iter(WINDOWS * (rounds * 2))
            resizes = alternate(
                {
                    "resize: seat refitted": lambda: resize(page, next(sizes), fitted=True),
                    "resize: window only (baseline)": lambda: resize(page, next(sizes), fitted=False),
                },
                rounds,
            )
            reconnects = alternate(
                {
                    "reconnect: by the page": lambda: reconnect(page),
                    "relaunch: by hand (baseline)": lambda: relaunch(page, portal),
                },
                rounds,
            )
            context.close()
        engine.dispose()
    for name, values in {**resizes, **reconnects}.items():
        print(summary(name, values))


if __name__ == "__main__":
    main()
