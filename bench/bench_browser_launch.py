"""Login click → first non-blank app frame, in Chromium, as a person meets it: fresh and warm browser profile, and
both ways an agent reaches the app.

"click" path: each round opens the sign-in page, fills it in, clicks "sign in", clicks the Customer Console's button
on the workspace page and waits until the seat's canvas shows a non-blank frame. "only app" path (`seats.open_only_app`,
agent1's policy publishes one app): the sign-in's answer is the seat page, so the round waits for the frame right
after the sign-in click. The browser presents agent1's client certificate the way the trusted reverse proxy forwards it
(extra headers on every request). "fresh" is a new browser context (empty cache, no cookies) per round; "warm" is one
context reused across rounds, its cookies cleared before each sign-in (its cache kept), as the same person signing in
again the next day. Timings come from the page itself (Navigation and Resource Timing, a wrapped `WebSocket`, a
`requestAnimationFrame` probe reading the canvas in the frame after each draw), on the wall clock shared with this
process. The Python RFB client's figure (bench_launch) runs in the same process, on the same warm pool, as the
baseline.

What the person waits for, on the click path, is two waits: the sign-in (click → workspace page loaded) and the app
(click → first frame). Between them a person reads the page and moves the mouse; the bench instead spends ~0.1 s of
its own Playwright steps (a selector wait, a load-state wait, a page evaluation), which is neither the gateway's
time nor the person's. So the click path prints "PERSON WAITS" = sign-in + app click → first frame, the figure the
issue's target applies to, and beside it the raw wall time from the sign-in click to the first frame, bench steps
included. Both waits count from the bench's click call, so Playwright's own click (its actionability checks, ~30-50
ms before the page starts navigating) stays in, as it did in earlier runs. On the only-app path nothing happens
between the sign-in click and the frame: the person's wait and the raw figure are the same.

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
from playwright.sync_api import Browser, BrowserContext, Page

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
  // Every page: the seat page answers the sign-in itself on the only-app path (at /login, then at /agent).
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
  // The canvas is read only in the animation frame after something drew on a canvas (noVNC draws into its back
  // buffer, then copies that onto the page's canvas with drawImage). Reading all 1280x800 pixels in every frame, as
  // this probe did, held the page's main thread while noVNC waited to handle its messages and decode the picture.
  let drawn = false;
  for (const method of ["drawImage", "putImageData", "fillRect"]) {
    const native = CanvasRenderingContext2D.prototype[method];
    CanvasRenderingContext2D.prototype[method] = function (...args) {
      drawn = true;
      return native.apply(this, args);
    };
  }
  function look() {
    const canvas = document.querySelector("#screen canvas");
    if (drawn && canvas) {
      drawn = false;
      if (!blank(canvas)) { window.__launch.firstFrame = now(); return; }
    }
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
CLICK_PARTS = (
    "sign-in",
    "launch page",
    "assets",
    "websocket",
    "first frame",
    "app click → first frame",
    "PERSON WAITS",
    "raw login click → frame",
)
"""The click path's figures: sign-in = click → workspace page loaded; launch page = app click → seat page received;
assets = → its last script; websocket = page received → seat websocket open; first frame = websocket open → first
non-blank frame; PERSON WAITS = sign-in + app click → first frame; raw = sign-in click → frame, the bench's steps
between the two pages included."""
ONLY_APP_PARTS = ("sign-in → seat page", "assets", "websocket", "first frame", "PERSON WAITS")
"""The only-app path's figures: sign-in click → seat page received, then as on the click path; PERSON WAITS = sign-in
click → first frame."""


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


def _signed_in_page(context: BrowserContext, base_url: str) -> tuple[Page, float]:
    """A new page with the sign-in form filled in and clicked; returns it and the time of the click."""
    with deadline("opening a page"):
        page = context.new_page()
    page.goto(base_url + "/login")
    page.fill("#username", "agent1")
    page.fill("#password", PASSWORDS["agent1"])
    clicked = time.time()
    page.click("#sign-in")
    return page, clicked


def _seat_timings(page: Page, base_url: str) -> dict[str, float]:
    """Wait for the seat's first frame, read the seat page's timings (seconds), then sign out and close the page."""
    page.wait_for_function("window.__launch && window.__launch.firstFrame")
    with deadline("reading the seat page's timings"):
        seen: dict[str, Any] = page.evaluate(READ_TIMINGS)
    page.goto(base_url + "/agent")
    page.click("#logout")  # the end of the shift: the seat is released, the next round meets a quiet node
    page.wait_for_url("**/login")  # closing while the sign-out navigation commits can hang (see `deadline`)
    with deadline("closing the page"):
        page.close()
    timings = {key: value / 1000 for key, value in seen.items() if key != "assetRequests"}
    return {**timings, "requests": float(seen["assetRequests"])}


def _seat_parts(seen: dict[str, float]) -> dict[str, float]:
    return {
        "assets": max(0.0, seen["assetsEnd"] - seen["pageResponse"]),
        "websocket": seen["wsOpen"] - seen["pageResponse"],
        "first frame": seen["firstFrame"] - seen["wsOpen"],
        "requests": seen["requests"],
    }


def one_round(context: BrowserContext, base_url: str, app_id: str = CONSOLE) -> dict[str, float]:
    """Sign in and click `app_id` on the workspace page once; seconds per part of the way (`CLICK_PARTS`)."""
    page, clicked = _signed_in_page(context, base_url)
    page.wait_for_selector(f'li[data-app="{app_id}"] button')
    page.wait_for_load_state("load")  # a person reads the page before clicking; its preloads have run by then
    with deadline("reading the workspace page's load time"):
        workspace = page.evaluate("performance.timeOrigin + performance.getEntriesByType('navigation')[0].loadEventEnd")
    app_clicked = time.time()
    page.click(f'li[data-app="{app_id}"] button')
    seen = _seat_timings(page, base_url)
    sign_in = workspace / 1000 - clicked
    return {
        "sign-in": sign_in,
        "launch page": seen["pageResponse"] - app_clicked,
        **_seat_parts(seen),
        "app click → first frame": seen["firstFrame"] - app_clicked,
        "PERSON WAITS": sign_in + seen["firstFrame"] - app_clicked,
        "raw login click → frame": seen["firstFrame"] - clicked,
    }


def only_app_round(context: BrowserContext, base_url: str) -> dict[str, float]:
    """Sign in once with `seats.open_only_app` on: the sign-in's answer is the seat page (`ONLY_APP_PARTS`)."""
    page, clicked = _signed_in_page(context, base_url)
    seen = _seat_timings(page, base_url)
    return {
        "sign-in → seat page": seen["pageResponse"] - clicked,
        **_seat_parts(seen),
        "PERSON WAITS": seen["firstFrame"] - clicked,
    }


def run_profile(
    browser: Browser,
    portal: SeatPortal,
    rounds: int,
    fresh: bool,
    wait_warm: Callable[[], None],
    app_id: str = CONSOLE,
    only_app: bool = False,
) -> list[dict[str, float]]:
    """Rounds of one profile on one path (`one_round`, or `only_app_round` with `only_app`), after one unmeasured."""
    settings = portal.broker.settings
    was, settings.open_only_app = settings.open_only_app, only_app  # read at each sign-in
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
                measured = (
                    only_app_round(context, portal.base_url)
                    if only_app
                    else one_round(context, portal.base_url, app_id)
                )
                results.append(measured)
            finally:
                if shared is None:
                    with deadline("closing the browser context"):
                        context.close()
        return results[1:]
    finally:
        settings.open_only_app = was
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
    parts = ONLY_APP_PARTS if "sign-in → seat page" in rounds[0] else CLICK_PARTS
    print(f"{label} ({len(rounds)} rounds, {rounds[0]['requests']:.0f} page resources on the seat page):")
    for part in parts:
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
            runs = {
                (profile, path): run_profile(browser, portal, args.rounds, profile == "fresh", wait, only_app=only_app)
                for profile in ("fresh", "warm")
                for path, only_app in (("click", False), ("only app", True))
            }
            login_to_first_frame(portal, 1, True)
            python_rfb = login_to_first_frame(portal, args.rounds, True)
        password_check = _password_checks(args.rounds)
        engine.dispose()
    print("baseline, Python RFB client (bench_launch), warm pool:")
    print(f"  {'login → first frame':<26} {_figures([r[2] for r in python_rfb])}")
    print(f"  {'websocket → first frame':<26} {_figures([r[2] - r[1] for r in python_rfb])}")
    print(f"  {'of sign-in: argon2 check':<26} {_figures(password_check)}   (the built-in directory's password hash)")
    for (profile, path), rounds in runs.items():
        report(f"Chromium, {profile} profile, {path} path", rounds)


if __name__ == "__main__":
    main()
