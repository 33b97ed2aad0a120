"""The wall page with 1,000 seats in Debian's Chromium: load, first paint, and the first meaningful paint (every tile
shown, the stream live), against the same page with 10 seats as the baseline, in alternating rounds.

Each round opens a fresh tab of a signed-in supervisor; times are the page's own (``performance``), from navigation
start: DOMContentLoaded, first contentful paint, and the moment the last tile exists with the status "live" (polled
on every animation frame). Also: the tab's main-thread time per second while the wall ticks its timers.

    ip netns exec NS .venv/bin/python -m bench.bench_wall_page --rounds 5
"""

import argparse
import statistics
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from playwright.sync_api import BrowserContext

from bench.bench_wall import seed
from bench.interleave import alternate
from gateway.db import make_engine
from gateway.migrate import upgrade
from tests.gateway.sessions.conftest import Portal
from tests.support.browser import chromium
from tests.support.portal import serving_portal

PASSWORD = "bench-supervisor-pw"  # noqa: S105 - a throw-away directory of the bench
SHOWN = """(count) => document.querySelectorAll('#wall-rows .tile').length === count
  && document.getElementById('wall-status').dataset.state === 'live' ? performance.now() : false"""
TIMES = """() => ({ dcl: performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd,
  fcp: (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime })"""
BUSY = """() => new Promise((done) => { const tasks = []; const observer = new PerformanceObserver((list) =>
  tasks.push(...list.getEntries())); observer.observe({ entryTypes: ['longtask'] });
  const started = performance.now(); let frames = 0, worst = 0, last = started;
  const frame = (now) => { frames++; worst = Math.max(worst, now - last); last = now;
    if (now - started < 5000) requestAnimationFrame(frame);
    else { observer.disconnect(); done({ frames, worst, long: tasks.reduce((sum, t) => sum + t.duration, 0) }); } };
  requestAnimationFrame(frame); })"""


@contextmanager
def wall_of(seats: int, parent: Path) -> Iterator[Portal]:
    directory = parent / f"wall-{seats}"
    directory.mkdir()
    url = f"sqlite:///{directory / 'wall.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        seed(engine, seats)
        with serving_portal(
            directory,
            url,
            engine,
            kind=Portal,
            passwords={"sup1": PASSWORD},
            groups={"sup1": ["SOHO-Supervisors"]},
        ) as portal:
            yield portal
    finally:
        engine.dispose()


def signed_in(browser_context: BrowserContext, portal: Portal) -> BrowserContext:
    page = browser_context.new_page()
    page.goto(f"{portal.base_url}/login")
    page.fill("#username", "sup1")
    page.fill("#password", PASSWORD)
    page.click("#sign-in")
    page.wait_for_url(f"{portal.base_url}/supervisor")
    page.close()
    return browser_context


def open_wall(context: BrowserContext, portal: Portal, seats: int) -> dict[str, float]:
    page = context.new_page()
    page.goto(f"{portal.base_url}/supervision/wall")
    shown = page.wait_for_function(SHOWN, arg=seats, polling="raf", timeout=60_000).json_value()
    times = page.evaluate(TIMES)
    page.close()
    return {"dcl": times["dcl"], "fcp": times["fcp"] or float("nan"), "shown": shown}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seats", type=int, default=1000)
    parser.add_argument("--baseline-seats", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory, ExitStack() as stack, chromium() as browser:
        walls = {n: stack.enter_context(wall_of(n, Path(directory))) for n in (args.seats, args.baseline_seats)}
        contexts = {
            n: signed_in(browser.new_context(viewport={"width": 1920, "height": 1080}), walls[n]) for n in walls
        }
        results = alternate({n: partial(open_wall, contexts[n], walls[n], n) for n in walls}, args.rounds)
        print(f"wall page in Chromium, {args.rounds} rounds each, alternating ({datetime.now(UTC):%Y-%m-%d}, SQLite)")
        for seats, rounds in results.items():
            median = {key: statistics.median(r[key] for r in rounds) for key in ("dcl", "fcp", "shown")}
            worst = max(r["shown"] for r in rounds)
            print(
                f"  {seats:>5} seats: DOMContentLoaded {median['dcl']:.0f} ms, first paint {median['fcp']:.0f} ms, "
                f"every tile shown and live (first meaningful paint) p50 {median['shown']:.0f} ms, max {worst:.0f} ms"
            )
        for seats in walls:
            page = contexts[seats].new_page()
            page.goto(f"{walls[seats].base_url}/supervision/wall")
            page.wait_for_function(SHOWN, arg=seats, polling="raf", timeout=60_000)
            busy = page.evaluate(BUSY)
            page.close()
            print(
                f"  {seats:>5} seats, 5 s of a live wall: {busy['frames'] / 5:.0f} frames/s, worst frame gap "
                f"{busy['worst']:.0f} ms, long tasks {busy['long'] / 5:.0f} ms per second"
            )


if __name__ == "__main__":
    main()
