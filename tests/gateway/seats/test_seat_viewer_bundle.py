"""The seat pages' noVNC: one bundle built by esbuild, named by its content, cached by the browser for good.

Real components: the install-time build (node + esbuild from deploy/seat-viewer's lock file, Debian's noVNC), the
portal with real seats, and Chromium loading the pages as an agent does.
"""

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, WebSocketRoute
from websockets.sync.client import connect

from gateway.seats.viewer_assets import VIEWER_PATH
from gateway.sessions.deps import SESSION_COOKIE
from tests.gateway.seats.conftest import (
    SeatPortal,
    audit_trail,
    browser_context,
    launch,
    launch_in_browser,
    seat_portal_on_sqlite,
)
from tests.support.components import require

SEAT_VIEWER = Path(__file__).resolve().parents[3] / "deploy/seat-viewer"
BUNDLE_URL = re.compile(re.escape(VIEWER_PATH) + r"/novnc-rfb-[A-Za-z0-9]+\.js")

pytestmark = pytest.mark.e2e


def _require_build() -> None:
    built = (SEAT_VIEWER / "node_modules/esbuild").is_dir() and (SEAT_VIEWER / "dist/manifest.json").is_file()
    require("the seat viewer bundle", built, install="deploy/lib.sh build_seat_viewer (tests/run.sh runs it)")


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeatPortal]:
    _require_build()
    with seat_portal_on_sqlite(tmp_path_factory, "seat-viewer", warm=1, cap=3) as running:
        yield running


def _build(novnc: Path, out: Path) -> str:
    """Run the install-time build on `novnc`'s files into `out`; the bundle's file name."""
    env = {"PATH": "/usr/bin:/bin", "NOVNC_DIR": str(novnc), "SEAT_VIEWER_OUT": str(out)}
    subprocess.run(["node", "build.mjs"], cwd=SEAT_VIEWER, env=env, check=True, capture_output=True, timeout=60)
    return str(json.loads((out / "manifest.json").read_text())["rfb"])


def test_bundle_name_follows_its_content(tmp_path: Path) -> None:
    _require_build()
    debian = Path("/usr/share/novnc")
    changed = tmp_path / "novnc"
    shutil.copytree(debian / "core", changed / "core")
    shutil.copytree(debian / "vendor", changed / "vendor")
    rfb = changed / "core/rfb.js"
    rfb.write_text(rfb.read_text().replace("RFB.messages = {", "RFB.changedByTheTest = true;\nRFB.messages = {", 1))
    first, again, other = (
        _build(debian, tmp_path / "a"),
        _build(debian, tmp_path / "b"),
        _build(changed, tmp_path / "c"),
    )
    assert first == again, "the same noVNC must build to the same name, or caches are thrown away for nothing"
    assert first != other, "changed content kept its name: browsers holding the old file would never see the change"
    assert "changedByTheTest" in (tmp_path / "c" / other).read_text()


def test_launch_sign_in_and_workspace_pages_name_the_bundle_served_immutable(
    portal: SeatPortal, agent1: httpx.Client
) -> None:
    workspace = agent1.get("/agent", headers={"accept": "text/html"}).text
    with portal.client() as stranger:  # the sign-in page, before anyone is signed in
        sign_in_page = stranger.get("/login", headers={"accept": "text/html"}).text
    page = launch(agent1).text
    bundle = BUNDLE_URL.search(page)
    assert bundle, "the seat page does not import the bundle"
    assert f'import RFB from "{bundle.group(0)}"' in page
    assert "/novnc/" not in page
    for preloading in (page, workspace, sign_in_page):
        assert f'<link rel="modulepreload" href="{bundle.group(0)}">' in preloading
        assert '<link rel="modulepreload" href="/static/seat_viewer.js">' in preloading
    assert 'import {SeatViewer} from "/static/seat_viewer.js"' in page
    served = agent1.get(bundle.group(0))
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("text/javascript")
    cache = {part.strip() for part in served.headers["cache-control"].split(",")}
    assert {"immutable", "public", "max-age=31536000"} <= cache
    manifest = json.loads((portal.settings.seats.seat_viewer_dir / "manifest.json").read_text())
    assert bundle.group(0).endswith("/" + manifest["rfb"])
    assert served.content == (portal.settings.seats.seat_viewer_dir / manifest["rfb"]).read_bytes()
    other = bundle.group(0).replace("novnc-rfb-", "novnc-rfb-X")
    assert agent1.get(other).status_code == 404, "only the current bundle's name may be served"


def _script_transfers(page: Page) -> list[tuple[str, int]]:
    """(path, bytes over the network) of every script and preload the page loaded; 0 bytes = from the cache."""
    entries = page.evaluate(
        "performance.getEntriesByType('resource').filter((e) => e.initiatorType !== 'fetch')"
        ".map((e) => [new URL(e.name).pathname, e.transferSize])"
    )
    return [(path, size) for path, size in entries if not path.endswith(".css")]


def _is_viewer_code(path: str) -> bool:
    """noVNC in any form: the bundle, or one of Debian's modules (the pages' own small scripts are not counted)."""
    return path.startswith(("/seats/viewer/", "/novnc/"))


def test_workspace_preloads_the_bundle_once_and_the_seat_page_loads_nothing_else(
    portal: SeatPortal, browser: Browser, agent1: httpx.Client
) -> None:
    context = browser_context(portal, browser, agent1)
    try:
        page = context.new_page()
        for visit in (1, 2):
            page.goto(portal.base_url + "/agent")
            page.wait_for_load_state("load")
            preloaded = [(path, size) for path, size in _script_transfers(page) if _is_viewer_code(path)]
            assert len(preloaded) == 1 and BUNDLE_URL.fullmatch(preloaded[0][0]), preloaded
            if visit == 1:
                assert preloaded[0][1] > 0, "a fresh profile must fetch the bundle on the workspace page"
            else:
                assert preloaded[0][1] == 0, "immutable: the second visit must neither fetch nor revalidate it"
            page.click('li[data-app="customer-console"] button')
            page.wait_for_function("window.seatConnected === true", timeout=10_000)
            on_seat_page = [(path, size) for path, size in _script_transfers(page) if _is_viewer_code(path)]
            assert all(BUNDLE_URL.fullmatch(path) and size == 0 for path, size in on_seat_page), on_seat_page
    finally:
        context.close()


def test_a_token_refused_on_the_early_socket_reaches_novnc(
    portal: SeatPortal, browser: Browser, agent1: httpx.Client
) -> None:
    """The page opens its websocket before noVNC runs and holds its events; the gateway's refusal (1008, the token
    was spent by someone else first) must still reach noVNC: its disconnect, not an endless "connecting"; the page
    then goes on to reconnect (the reconnection itself: test_seat_viewer_in_browser)."""
    cookie = f"{SESSION_COOKIE}={agent1.cookies[SESSION_COOKIE]}"

    stolen: list[str] = []

    def spend_it_first(socket: WebSocketRoute) -> None:
        if not stolen:  # the page's first, early socket; its reconnection's is left alone
            stolen.append(socket.url)
            with connect(socket.url, additional_headers={"Cookie": cookie}) as thief:
                thief.recv(timeout=5)  # the gateway's RFB greeting: the token is spent
        socket.connect_to_server()

    context = browser_context(portal, browser, agent1)
    try:
        page = context.new_page()
        page.route_web_socket(re.compile(r".*/seats/ws\?token=.*"), spend_it_first)
        launch_in_browser(page, portal)
        page.wait_for_function("window.seatTimings?.disconnectedAt != null", timeout=15_000)
        assert page.evaluate("document.getElementById('status').dataset.state") in ("reconnecting", "connected")
        assert "refused" in [event.outcome for event in audit_trail(portal, "seat.connect")]
    finally:
        context.close()
