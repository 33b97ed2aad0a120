"""An RDP app launched from the portal, end to end on real components: the agent clicks it in Chromium, the gateway
learns the RDP host's certificate on first use (audited) and mints a one-time launch with policy's compiled
parameters, the seat page connects to the REAL guacamole-lite (node server.js), which redeems it at the gateway's
loopback route, then the REAL guacd 1.6.0 opens an RDP session on Debian's xrdp + xorgxrdp whose session runs only
the Customer Console. What guacd received is read from a passive wire tap and guacd's own log; what the seat shows
is compared with the RDP session's X display.
"""

import contextlib
import html as html_module
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page
from sqlmodel import Session, select
from websockets.exceptions import ConnectionClosed

from desktop_broker.guacamole.token import derive_token_key
from desktop_broker.recording.wire import InstructionReader
from gateway.seats.models import LaunchToken, RdpHostCertificate, ScreenRecording, SeatLease, SeatLeaseState
from gateway.seats.settings import RecordingSettings
from tests.desktop_broker.test_guacamole_launch import (  # noqa: F401 - fixtures are used by name
    KEY,
    LaunchEndpoint,
    NodeServer,
    guacd,
    log_dir,
    open_seat,
    refused,
    tap,
)
from tests.gateway.seats.conftest import SeatPortal, audit_trail, browser_context, launch, seat_portal_on_sqlite
from tests.gateway.voice.conftest import wait_for
from tests.support.guacd import GuacdTap, RealGuacd, TappedConnection
from tests.support.xrdp import RdpHost, xrdp_host

pytestmark = pytest.mark.e2e

SECRET = "test broker secret, 32 bytes or more!"
"""The secret server.js's key (KEY, GUACLITE_KEY_HEX) is derived from in test_guacamole_launch."""
SCREEN = (1280, 800)
"""The seat page's remote screen (gateway.seats.routes.GUACAMOLE_SCREEN): xrdp's session takes this size."""
CONSOLE = ["/usr/bin/python3", "-m", "desktop_broker.apps.customer_console"]


def rdp_policy(host: RdpHost, recordings: Path) -> str:
    return f"""
version: 1
storage:
  recording_path: {recordings}
apps:
  - id: billing
    title: Billing (RemoteApp)
    backend: guacamole
    protocol: rdp
    host: 127.0.0.1
    port: {host.port}
    username: {host.username}
    cert_trust_first_use: true
roles:
  supervisor: {{require_client_certificate: false}}
  security_admin: {{require_client_certificate: false}}
groups:
  SOHO-Agents:
    roles: [agent]
    apps: [billing]
    watermark: {{enabled: true, template: "{{user}} {{time}}"}}
    recording: true
    idle_timeout: 15m
    max_session: 8h
  SOHO-Supervisors:
    roles: [supervisor]
"""


@pytest.fixture(scope="module")
def rdp_host() -> Iterator[RdpHost]:
    with xrdp_host(CONSOLE) as running:
        yield running


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory, rdp_host: RdpHost, log_dir: Path) -> Iterator[SeatPortal]:  # noqa: F811
    password_file = log_dir / "billing.password"
    password_file.write_text(rdp_host.password + "\n")
    password_file.chmod(0o600)
    with seat_portal_on_sqlite(
        tmp_path_factory,
        "guacamole-portal",
        warm=0,
        guacamole_secret=SECRET,
        guacamole_passwords={"billing": password_file},
        policy=rdp_policy(rdp_host, log_dir / "recordings"),
        recording=RecordingSettings(
            in_progress_dir=log_dir / "recordings", sealed_dir=log_dir / "sealed", key_file=log_dir / "recordings.key"
        ),
    ) as running:
        yield running


@pytest.fixture(scope="module")
def node(node_modules: Path, tap: GuacdTap, log_dir: Path, portal: SeatPortal) -> Iterator[NodeServer]:  # noqa: F811
    """guacamole-lite redeeming at the gateway's real /internal/launch routes; the portal points browsers at it."""
    assert derive_token_key(SECRET.encode()) == KEY
    running = NodeServer(tap.port, f"{portal.base_url}/internal/launch", log_dir)
    # Its port is known only now: the one setting that depends on it is set before any launch.
    portal.broker.settings.guacamole_websocket_url = f"ws://127.0.0.1:{running.port}/"
    try:
        yield running
    finally:
        running.stop()


def rows(portal: SeatPortal, model: type, **where: str) -> list:  # type: ignore[type-arg]
    with Session(portal.engine) as db:
        query = select(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return list(db.exec(query).all())


def lease_of(portal: SeatPortal, login: str) -> SeatLease:
    return max(rows(portal, SeatLease, login=login), key=lambda lease: lease.started_at)  # type: ignore[no-any-return]


CANVAS_PIXELS = """(points) => {
  const canvas = window.guacClient.getDisplay().getDefaultLayer().getCanvas();
  const context = canvas.getContext("2d");
  return points.map(([x, y]) => Array.from(context.getImageData(x, y, 1, 1).data.slice(0, 3)));
}"""
SAMPLES = [(x, y) for x in (20, 200, 420, 640, 900, 1180) for y in (20, 150, 400, 650, 780)]


def seat_shows(host: RdpHost) -> list[list[int]]:
    rgb = host.screen_rgb(*SCREEN)
    return [list(rgb[(y * SCREEN[0] + x) * 3 : (y * SCREEN[0] + x) * 3 + 3]) for x, y in SAMPLES]


def page_matches_seat(page: Page, host: RdpHost, tolerance: int = 12) -> bool:
    """Every sampled pixel of the page's remote display equals the RDP session's own (RDP codecs are lossy)."""
    if host.session_display() is None:
        return False  # xrdp-sesman has not started the account's session yet
    drawn = page.evaluate(CANVAS_PIXELS, SAMPLES)
    shown = seat_shows(host)
    return all(abs(a - b) <= tolerance for d, s in zip(drawn, shown, strict=True) for a, b in zip(d, s, strict=True))


def open_app(portal: SeatPortal, browser: Browser, client: httpx.Client, host: RdpHost) -> tuple[Page, float]:
    """Click the app on the portal; the page once the seat's pixels are drawn, and the seconds that took."""
    context = browser_context(portal, browser, client)
    page = context.new_page()
    page.goto(portal.base_url + "/agent")
    clicked = time.monotonic()
    page.click('li[data-app="billing"] button')
    page.wait_for_function("window.guacamoleState === 3", timeout=20_000)  # Guacamole.Client CONNECTED
    deadline = time.monotonic() + 20
    while not page_matches_seat(page, host):
        assert time.monotonic() < deadline, "the page never showed what the RDP session shows"
        time.sleep(0.2)
    return page, time.monotonic() - clicked


def agent_connection(wire: GuacdTap, before: int) -> TappedConnection:
    (connection,) = [c for c in wire.since(before) if not c.selector.startswith("$")]
    return connection


def test_one_click_opens_only_the_rdp_app_with_policys_parameters_and_a_learned_certificate(
    portal: SeatPortal,
    node: NodeServer,
    guacd: RealGuacd,  # noqa: F811
    tap: GuacdTap,  # noqa: F811
    rdp_host: RdpHost,
    browser: Browser,
    agent1: httpx.Client,
) -> None:
    mark, before = guacd.mark(), len(tap.connections)
    page, seconds = open_app(portal, browser, agent1, rdp_host)
    try:
        watermark = page.inner_text("#watermark")
        html = page.content()
        wait_for(lambda: lease_of(portal, "agent1").state is SeatLeaseState.CONNECTED)  # server.js: /connected
    finally:
        page.context.close()
    print(f"\nportal click → RDP app drawn in Chromium: {seconds:.2f} s")
    received = agent_connection(tap, before).parameters
    # Exactly what policy compiled, as guacd received it …
    assert (received["hostname"], received["port"]) == ("127.0.0.1", str(rdp_host.port))
    assert (received["username"], received["password"]) == (rdp_host.username, rdp_host.password)
    assert received["cert-fingerprints"] == rdp_host.fingerprint
    assert received["security"] == "tls"  # not guacd's "any": FreeRDP checks the pin only in a TLS handshake
    assert (received["disable-copy"], received["disable-paste"]) == ("true", "true")
    assert (received["enable-drive"], received["enable-printing"]) == ("false", "false")
    assert received["disable-audio"] == "true"
    assert (received["ignore-cert"], received["cert-tofu"], received["read-only"]) == ("", "", "")
    assert re.fullmatch(r"agent1-billing-\d{8}T\d{6}Z-[0-9a-f]{8}", received["recording-name"])
    # … and as guacd used it: nothing it had to default, the certificate accepted by its pin, the recording named.
    log = guacd.log(mark)
    stated = [name for name, value in received.items() if value]
    assert [name for name in stated if f'Parameter "{name}" omitted' in log] == []
    # FreeRDP logs its failed CA check, then accepts the pinned fingerprint; a refusal would abort here.
    assert "certificate not trusted, aborting" not in log and "RDP server closed/refused connection" not in log
    # No sound, so guacd opened neither rdpsnd nor rdpdr: two MCS channel joins fewer, each a FreeRDP 2 wait of up
    # to 100 ms (docs/guacamole.md, "Figures").
    assert [channel for channel in ("rdpsnd", "rdpdr") if f'static channel "{channel}" loaded' in log] == []
    recording = Path(received["recording-path"]) / received["recording-name"]
    assert recording.is_file() and "Creation of recording failed" not in log
    (recorded,) = rows(portal, ScreenRecording)  # linked to the person, session, lease and seat (docs/recordings.md)
    assert (recorded.file_name, recorded.login, recorded.backend) == (received["recording-name"], "agent1", "guacamole")
    # The first launch learned xrdp's certificate, audited; the gateway pins it from now on.
    (learned,) = rows(portal, RdpHostCertificate)
    assert learned.fingerprint == rdp_host.fingerprint
    trust = audit_trail(portal, "seat.rdp_certificate")
    assert [(event.actor, event.outcome) for event in trust] == [("agent1", "trusted_first_use")]
    assert "agent1" in watermark
    token = re.search(r'data-token="([^"]+)"', html)
    assert token is not None
    replay_mark, replay_before = guacd.mark(), len(tap.connections)
    assert refused(node, html_module.unescape(token.group(1)))
    time.sleep(0.3)
    assert guacd.new_connections(replay_mark) == 0 and tap.since(replay_before) == []
    launches = rows(portal, LaunchToken, backend="guacamole")
    assert all(row.used_at is not None for row in launches)


def test_secrets_are_in_no_process_argv(
    portal: SeatPortal,
    node: NodeServer,
    rdp_host: RdpHost,
    browser: Browser,
    agent1: httpx.Client,
) -> None:
    """guacamole-lite's key and the RDP password travel in files, the environment and the encrypted token only."""
    page, _ = open_app(portal, browser, agent1, rdp_host)
    try:
        secrets = {"token key": KEY.hex().encode(), "RDP password": rdp_host.password.encode()}
        leaks = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    argv = (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                leaks += [f"{name} in pid {entry.name}" for name, value in secrets.items() if value in argv]
    finally:
        page.context.close()
    assert leaks == []


def test_dlp_in_chromium_clipboard_denied_both_ways_and_files_and_printing_refused(
    portal: SeatPortal,
    node: NodeServer,
    guacd: RealGuacd,  # noqa: F811
    tap: GuacdTap,  # noqa: F811
    rdp_host: RdpHost,
    browser: Browser,
    agent1: httpx.Client,
) -> None:
    mark, before = guacd.mark(), len(tap.connections)
    page, _ = open_app(portal, browser, agent1, rdp_host)
    try:
        page.evaluate("""() => {
            window.received = [];
            window.guacClient.onclipboard = (stream, mimetype) => window.received.push("clipboard:" + mimetype);
            window.guacClient.onfile = (stream, mimetype, name) => window.received.push("file:" + name);
        }""")
        # Seat → browser: text copied inside the RDP session (its CLIPBOARD, which xrdp's chansrv offers over RDP).
        # xclip stays in the background to serve the selection: its output goes nowhere, so run() returns.
        subprocess.run(
            ["xclip", "-selection", "clipboard"],
            input=b"SECRET-FROM-SEAT",
            env=rdp_host.x_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=5,
            check=True,
        )
        # Browser → seat: a page that tries anyway (ours never does) sends a clipboard stream and a file upload.
        page.evaluate("""async () => {
            const { default: Guacamole } = await import("/guacamole-js/guacamole-common.js");
            const clip = window.guacClient.createClipboardStream("text/plain");
            const writer = new Guacamole.StringWriter(clip); writer.sendText("PASTED-FROM-HOME"); writer.sendEnd();
            const file = window.guacClient.createFileStream("text/plain", "home.txt");
            const upload = new Guacamole.StringWriter(file); upload.sendText("a file from home"); upload.sendEnd();
        }""")
        connection = agent_connection(tap, before)
        assert tap.wait_for(lambda: len([i for i in connection.from_guacd if i[0] == "ack"]) >= 3, timeout=5)
        # The agent's real paste shortcut in Chromium, with home text on the browser's clipboard.
        page.context.grant_permissions(["clipboard-read", "clipboard-write"])
        page.evaluate("navigator.clipboard.writeText('HOME-CLIPBOARD')")
        page.keyboard.press("Control+V")
        time.sleep(1.5)
        received = page.evaluate("window.received")
        browser_clipboard = page.evaluate("navigator.clipboard.readText()")
    finally:
        page.context.close()
    seat_clipboard = rdp_host.x_run(["xclip", "-selection", "clipboard", "-o"])
    assert seat_clipboard.stdout == b"SECRET-FROM-SEAT"  # the seat's own clipboard, untouched by the browser
    assert received == [] and browser_clipboard == "HOME-CLIPBOARD"
    assert [i for i in connection.from_guacd if i[0] == "clipboard"] == []
    refusals = {(ack[2], ack[3]) for ack in connection.from_guacd if ack[0] == "ack"}
    # 0x0100 UNSUPPORTED: the paste has no handler (disable-paste), the upload is turned down (no drive), and so
    # are the upload's data blobs; nothing was accepted.
    assert {("Clipboard unsupported", "256"), ("File transfer disabled", "256")} <= refusals
    assert {status for _, status in refusals} == {"256"}
    log = guacd.log(mark)
    assert "Registered device" not in log  # no drive and no printer offered to the RDP host


CANVAS_EVERY_97TH = """() => {
  const data = window.guacClient.getDisplay().getDefaultLayer().getCanvas().getContext("2d")
    .getImageData(0, 0, 1280, 800).data;
  const out = [];
  for (let i = 0; i < 1280 * 800; i += 97) out.push([data[i * 4], data[i * 4 + 1], data[i * 4 + 2]]);
  return out;
}"""


def test_watermark_is_composited_over_every_frame(
    portal: SeatPortal,
    node: NodeServer,
    rdp_host: RdpHost,
    browser: Browser,
    agent1: httpx.Client,
) -> None:
    """Screenshots of the page (what a phone camera would see) differ from the remote frame under the overlay in every
    frame taken while the app changes; the overlay is above the display and lets every click through."""
    page, _ = open_app(portal, browser, agent1, rdp_host)
    try:
        # A window exactly as wide as the seat, taller than it: the page scales the picture to 1, so the screenshot
        # of the picture and the remote frame compare pixel for pixel.
        page.set_viewport_size({"width": SCREEN[0], "height": 900})
        page.wait_for_function("window.guacClient.getDisplay().getScale() === 1", timeout=5_000)
        picture = page.locator("[data-seat-picture]").bounding_box()
        assert picture is not None
        # Centred in the stage under a bar of fractional height, the picture's box starts between pixels; Chromium
        # draws it from the nearest whole one, where the screenshot is cut too.
        clip = {"x": round(picture["x"]), "y": round(picture["y"]), "width": SCREEN[0], "height": SCREEN[1]}
        marked = []
        for step in range(5):
            rdp_host.x_run(["xdotool", "mousemove", str(100 + 150 * step), "300", "click", "1"])
            time.sleep(0.4)
            shot = subprocess.run(
                ["convert", "png:-", "-depth", "8", "rgb:-"],
                input=page.screenshot(clip=clip),
                capture_output=True,
                check=True,
            ).stdout
            canvas = page.evaluate(CANVAS_EVERY_97TH)
            differing = sum(
                1
                for n, i in enumerate(range(0, 1280 * 800, 97))
                if any(abs(shot[i * 3 + c] - canvas[n][c]) > 6 for c in range(3))
            )
            marked.append(differing)
        on_top = page.evaluate(
            "getComputedStyle(document.getElementById('watermark')).pointerEvents === 'none'"
            " && +getComputedStyle(document.getElementById('watermark')).zIndex > 0"
        )
    finally:
        page.context.close()
    assert on_top
    assert all(count > 100 for count in marked), marked


def test_a_host_showing_another_certificate_than_the_learned_one_is_refused_and_audited(
    portal: SeatPortal,
    node: NodeServer,
    guacd: RealGuacd,  # noqa: F811
    tap: GuacdTap,  # noqa: F811
    rdp_host: RdpHost,
) -> None:
    """The broker re-reads the real xrdp's certificate at every launch and compares it with the learned one."""
    with portal.signed_in("agent2") as agent2:
        launch(agent2, "billing")  # learns the certificate if no earlier test did
        with Session(portal.engine) as db:
            (learned,) = db.exec(select(RdpHostCertificate)).all()
            assert learned.fingerprint == rdp_host.fingerprint
            learned.fingerprint = "sha256:" + ":".join(["00"] * 32)  # what an earlier, other certificate left
            db.add(learned)
            db.commit()
        mark, before = guacd.mark(), len(tap.connections)
        try:
            page = launch(agent2, "billing")
        finally:
            with Session(portal.engine) as db:
                (learned,) = db.exec(select(RdpHostCertificate)).all()
                learned.fingerprint = rdp_host.fingerprint  # for whatever runs after
                db.add(learned)
                db.commit()
    assert page.status_code == 503 and "different certificate" in page.text
    assert 'data-token="' not in page.text
    time.sleep(0.3)
    assert guacd.new_connections(mark) == 0 and tap.since(before) == []
    last = audit_trail(portal, "seat.rdp_certificate")[-1]
    assert (last.actor, last.outcome) == ("agent2", "certificate_changed")
    assert rdp_host.fingerprint in last.detail


def test_guacd_itself_refuses_an_rdp_host_whose_certificate_is_not_the_pinned_one(
    node_modules: Path,
    guacd: RealGuacd,  # noqa: F811
    tap: GuacdTap,  # noqa: F811
    rdp_host: RdpHost,
    log_dir: Path,  # noqa: F811
) -> None:
    """The pin is enforced by guacd's FreeRDP, not only by the broker: a wrong `cert-fingerprints` gets no session."""
    endpoint = LaunchEndpoint()
    endpoint.thread.start()
    direct = NodeServer(tap.port, endpoint.url, log_dir)
    try:
        parameters = {
            "hostname": "127.0.0.1",
            "port": str(rdp_host.port),
            "username": rdp_host.username,
            "password": rdp_host.password,
            "cert-fingerprints": "sha256:" + ":".join(["00"] * 32),
            "disable-copy": "true",
            "disable-paste": "true",
            "enable-drive": "false",
            "enable-printing": "false",
            "security": "tls",
        }
        token = endpoint.gate.issue_seat_launch(user="agent1", seat="s", protocol="rdp", parameters=parameters).token
        mark = guacd.mark()
        with open_seat(direct, token) as client:
            guacd.wait_for_log("certificate not trusted, aborting", since=mark, timeout=15)
            errors = []
            with contextlib.suppress(ConnectionClosed, TimeoutError):
                while not errors:
                    message = client.recv(timeout=10)
                    errors = [i for i in InstructionReader().feed(message.encode()) if i[0] == "error"]
    finally:
        direct.stop()
        endpoint.server.shutdown()
        endpoint.server.server_close()
    assert errors and errors[0][2] == "519"  # guacd's status for "SSL/TLS connection failed" (untrusted certificate)


def test_a_key_held_when_the_window_loses_focus_is_released(
    portal: SeatPortal,
    node: NodeServer,
    tap: GuacdTap,  # noqa: F811
    rdp_host: RdpHost,
    browser: Browser,
    agent1: httpx.Client,
) -> None:
    """Guacamole.Keyboard repeats a held key every 50 ms until its key-up, which a window that lost focus mid-press
    never gets: a stuck key on the seat, and input that keeps an unattended seat open. The page resets the keyboard."""
    before = len(tap.connections)
    page, _ = open_app(portal, browser, agent1, rdp_host)
    try:
        connection = agent_connection(tap, before)

        def presses() -> int:
            return connection.after_ready.count(("key", "97", "1"))

        page.keyboard.down("a")
        assert tap.wait_for(lambda: presses() >= 3, timeout=5), "the held key was not repeated"
        page.evaluate("window.dispatchEvent(new Event('blur'))")
        assert tap.wait_for(lambda: ("key", "97", "0") in connection.after_ready, timeout=5), "no key-up on blur"
        time.sleep(0.3)
        settled = presses()
        time.sleep(1.5)
        assert presses() == settled, "the key kept repeating after the window lost focus"
    finally:
        page.context.close()
