"""Login click → first non-blank app frame, in Chromium, as a person meets it: fresh and warm browser profile.

Each round opens the sign-in page, fills it in, clicks "sign in", clicks the Customer Console's button on the
workspace page and waits until the seat's canvas shows a non-blank frame. The browser presents agent1's client
certificate the way the trusted reverse proxy forwards it (extra headers on every request). "fresh" is a new browser
context (empty cache, no cookies) per round; "warm" is one context reused across rounds, its cookies cleared before
each sign-in (its cache kept), as the same person signing in again the next day. Timings come from the page itself
(Navigation and Resource Timing, a wrapped `WebSocket`, a `requestAnimationFrame` probe reading the canvas), on the
wall clock shared with this process. The Python RFB client's figure (bench_launch) runs in the same process, on the
same warm pool, as the baseline.

    .venv/bin/python -m bench.bench_browser_launch --rounds 12
"""

import argparse
import os
import signal
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from playwright.sync_api import Browser, BrowserContext

from bench.bench_launch import login_to_first_frame
from bench.bench_seats import percentile
from gateway.db import make_engine
from gateway.directory.builtin import password_hash
from gateway.migrate import upgrade
from tests.gateway.seats.conftest import SeatPortal, seat_portal
from tests.gateway.sessions.conftest import PASSWORDS
from tests.support.browser import chromium
from tests.support.cgroups import ensure_cgroup_hierarchies

PROBE = """
(() => {
  if (!location.pathname.startsWith("/agent/apps/")) return;
  const now = () => performance.timeOrigin + performance.now();
  window.__launch = {};
  const Native = window.WebSocket;
  // A plain function returning the native socket: noVNC checks the socket's own prototype for its methods.
  window.WebSocket = function (...args) {
    const socket = new Native(...args);
    window.__launch.wsCreated = now();
    socket.addEventListener("open", () => { window.__launch.wsOpen = now(); });
    return socket;
  };
  Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3, prototype: Native.prototype});
  function blank(canvas) {
    if (!canvas.width || !canvas.height) return true;
    const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 0; i < pixels.length; i += 4 * 97) {
      if (pixels[i + 3] && (pixels[i] || pixels[i + 1] || pixels[i + 2])) return false;
    }
    return true;
  }
  function look() {
    const canvas = document.querySelector("#screen canvas");
    if (canvas && !blank(canvas)) { window.__launch.firstFrame = now(); return; }
    requestAnimationFrame(look);
  }
  requestAnimationFrame(look);
})();
"""

READ_TIMINGS = """
() => {
  const navigation = performance.getEntriesByType("navigation")[0];
  const scripts = performance.getEntriesByType("resource").filter((entry) => entry.initiatorType !== "fetch"
      && entry.initiatorType !== "xmlhttprequest");
  const origin = performance.timeOrigin;
  return {
    pageStart: origin + navigation.startTime,
    pageResponse: origin + navigation.responseEnd,
    assetsEnd: origin + Math.max(navigation.responseEnd, ...scripts.map((entry) => entry.responseEnd)),
    assetRequests: scripts.length,
    ...window.__launch,
  };
}
"""

CONSOLE = "customer-console"
QUIET_SECONDS = 0.5
STEP_SECONDS = 30.0
"""Deadline of every browser step: Playwright's own timeout for those that take one, the watchdog's for the rest."""
PARTS = (
    "sign-in",
    "launch page",
    "assets",
    "websocket",
    "first frame",
    "app click → first frame",
    "LOGIN CLICK → FIRST FRAME",
)


@contextmanager
def deadline(step: str, seconds: float = STEP_SECONDS) -> Iterator[None]:
    """Fail `step` with a message naming it if it has not finished after `seconds`.

    Some Playwright calls wait without a timeout of their own (`close`, `new_page`, `evaluate`, `clear_cookies`): a
    `page.close()` that races a navigation's commit waits forever, because Chromium acknowledges the close and drops it
    (crbug.com/536385539, microsoft/playwright#42068); that was this bench's hang, after the sign-out click. At the
    deadline the watchdog kills the browser: the waiting call then fails at once and the seats are stopped on the way
    out, instead of the bench hanging with them running.
    """
    overran = threading.Event()

    def kill_browser() -> None:
        overran.set()
        for pid in _browser_processes():
            os.kill(pid, signal.SIGKILL)

    watchdog = threading.Timer(seconds, kill_browser)
    watchdog.start()
    try:
        yield
    except Exception as error:
        if overran.is_set():
            raise RuntimeError(f"{step} did not finish within {seconds:.0f} s; the browser was stopped") from error
        raise
    finally:
        watchdog.cancel()


def _browser_processes() -> list[int]:
    """Chromium's browser processes: the children of this process's children (Playwright's driver starts them)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):  # a process that ended meanwhile
            continue
    drivers = {pid for pid, parent in parents.items() if parent == os.getpid()}
    return [pid for pid, parent in parents.items() if parent in drivers]


def one_round(context: BrowserContext, base_url: str, app_id: str = CONSOLE) -> dict[str, float]:
    """Sign in and open `app_id` once; seconds per part of the way, and the total from the sign-in click."""
    with deadline("opening a page"):
        page = context.new_page()
    page.goto(base_url + "/login")
    page.fill("#username", "agent1")
    page.fill("#password", PASSWORDS["agent1"])
    clicked = time.time()
    page.click("#sign-in")
    page.wait_for_selector(f'li[data-app="{app_id}"] button')
    page.wait_for_load_state("load")  # a person reads the page before clicking; its preloads have run by then
    with deadline("reading the workspace page's load time"):
        workspace = page.evaluate("performance.timeOrigin + performance.getEntriesByType('navigation')[0].loadEventEnd")
    app_clicked = time.time()
    page.click(f'li[data-app="{app_id}"] button')
    page.wait_for_function("window.__launch && window.__launch.firstFrame")
    with deadline("reading the seat page's timings"):
        seen: dict[str, Any] = page.evaluate(READ_TIMINGS)
    page.goto(base_url + "/agent")
    page.click("#logout")  # the end of the shift: the seat is released, the next round meets a quiet node
    page.wait_for_url("**/login")  # closing while the sign-out navigation commits can hang (see `deadline`)
    with deadline("closing the page"):
        page.close()
    ms = {key: value / 1000 for key, value in seen.items() if key != "assetRequests"}
    return {
        "sign-in": workspace / 1000 - clicked,
        "launch page": ms["pageResponse"] - app_clicked,
        "assets": max(0.0, ms["assetsEnd"] - ms["pageResponse"]),
        "websocket": ms["wsOpen"] - ms["pageResponse"],
        "first frame": ms["firstFrame"] - ms["wsOpen"],
        "app click → first frame": ms["firstFrame"] - app_clicked,
        "LOGIN CLICK → FIRST FRAME": ms["firstFrame"] - clicked,
        "requests": float(seen["assetRequests"]),
    }


def run_profile(
    browser: Browser,
    portal: SeatPortal,
    rounds: int,
    fresh: bool,
    wait_warm: Callable[[], None],
    app_id: str = CONSOLE,
) -> list[dict[str, float]]:
    headers = portal.proxy_headers("agent1")
    results = []
    shared = None if fresh else _context(browser, headers)
    try:
        for _ in range(rounds + 1):  # the first round fills the warm profile's cache and Python's caches
            wait_warm()
            context = _context(browser, headers) if shared is None else shared
            try:
                with deadline("clearing the cookies"):
                    context.clear_cookies()
                results.append(one_round(context, portal.base_url, app_id))
            finally:
                if shared is None:
                    with deadline("closing the browser context"):
                        context.close()
        return results[1:]
    finally:
        if shared is not None:
            with deadline("closing the browser context"):
                shared.close()


def _context(browser: Browser, headers: dict[str, str]) -> BrowserContext:
    """A browser context presenting agent1's certificate through the proxy's headers, with the page probe."""
    with deadline("opening a browser context"):
        context = browser.new_context(extra_http_headers=headers)
        context.set_default_timeout(STEP_SECONDS * 1000)  # every wait Playwright times itself
        context.add_init_script(PROBE)
    return context


def wait_for_warm_seat(portal: SeatPortal) -> Callable[[], None]:
    def wait() -> None:
        """Until the last round's seat is stopped and one warm seat waits, then a moment for the stop to finish; a
        pool that does not come back within a minute stops the bench with what it holds (not a silent hang)."""
        deadline = time.monotonic() + 60
        while portal.broker.pool is not None and portal.broker.pool.count() != (0, 1):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the pool holds {portal.broker.pool.count()} (busy, warm), not one warm seat")
            portal.broker.reconcile()  # as its 3 s job would: refill the pool once the stop has finished
            time.sleep(0.1)
        time.sleep(QUIET_SECONDS)

    return wait


def _password_checks(rounds: int) -> list[float]:
    """The built-in directory's argon2 verification alone: slow on purpose, and a fixed share of every sign-in."""
    hasher = PasswordHasher()  # verifies with the parameters stored in the hash: the directory's own
    hashed = password_hash(PASSWORDS["agent1"])
    durations = []
    for _ in range(rounds):
        started = time.monotonic()
        hasher.verify(hashed, PASSWORDS["agent1"])
        durations.append(time.monotonic() - started)
    return durations


def _figures(values: list[float]) -> str:
    return f"p50 {statistics.median(values) * 1000:6.0f} ms   p95 {percentile(values, 0.95) * 1000:6.0f} ms"


def report(label: str, rounds: list[dict[str, float]]) -> None:
    print(f"{label} ({len(rounds)} rounds, {rounds[0]['requests']:.0f} page resources on the seat page):")
    for part in PARTS:
        print(f"  {part:<26} {_figures([r[part] for r in rounds])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=12)
    args = parser.parse_args()
    ensure_cgroup_hierarchies()  # `ip netns exec` hides them; seats need them
    with tempfile.TemporaryDirectory(prefix="sohogw-bench-browser-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        url = f"sqlite:///{root / 'bench.db'}"
        upgrade(url)
        engine = make_engine(url)
        with seat_portal(root, url, engine, warm=1, cap=4) as portal, chromium() as browser:
            wait = wait_for_warm_seat(portal)
            fresh = run_profile(browser, portal, args.rounds, True, wait)
            warm = run_profile(browser, portal, args.rounds, False, wait)
            login_to_first_frame(portal, 1, True)
            python_rfb = login_to_first_frame(portal, args.rounds, True)
        password_check = _password_checks(args.rounds)
        engine.dispose()
    print("baseline, Python RFB client (bench_launch), warm pool:")
    print(f"  {'login → first frame':<26} {_figures([r[2] for r in python_rfb])}")
    print(f"  {'websocket → first frame':<26} {_figures([r[2] - r[1] for r in python_rfb])}")
    print(f"  {'of sign-in: argon2 check':<26} {_figures(password_check)}   (the built-in directory's password hash)")
    report("Chromium, fresh profile", fresh)
    report("Chromium, warm profile", warm)


if __name__ == "__main__":
    main()
