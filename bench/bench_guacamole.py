"""The Guacamole path on real components, beside the X11 kiosk measured in the same run.

1. Login click → first frame in Chromium, by `bench_browser_launch`'s method (its rounds: the sign-in page filled and
   clicked, the app's button clicked on the workspace page, timings from the page until the seat's canvas shows a
   non-blank frame; fresh and warm browser profile). RDP: the portal's one-time launch, guacamole-lite (node
   server.js), the real guacd 1.6.0 and Debian's xrdp + xorgxrdp whose session runs only the Customer Console.
   Baseline: the X11 kiosk's Customer Console on a warm seat, in the same run. The first round of each (left out of
   the figures) starts the account's Xorg session on xrdp; later rounds reconnect to it.
2. Memory per seat (PSS): guacd's process for the connection + the xrdp session (xrdp's and sesman's forks, Xorg,
   chansrv, the app), beside an X11 seat (Xvfb, x11vnc, app, watermark).
3. A scrolling app (a Tk text widget adding a line every 16 ms): frames (`sync`) and bytes per second that reach a
   client through guacamole-lite and guacd, over RDP (xrdp) and over VNC (Xvfb + x11vnc) in the same run.

    ip netns exec NS .venv/bin/python -m bench.bench_guacamole --rounds 6
"""

import argparse
import os
import pwd
import subprocess
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from sqlmodel import Session, col, select
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from bench.bench_browser_launch import report, run_profile, wait_for_warm_seat
from desktop_broker.pool import PooledSeat
from desktop_broker.recording.wire import InstructionReader, encode
from desktop_broker.x11.processes import pss_kib
from desktop_broker.x11.unix_accounts import processes_of
from gateway.db import make_engine
from gateway.migrate import upgrade
from gateway.seats.models import SeatLease, SeatLeaseState
from tests.desktop_broker.test_guacamole_launch import LaunchEndpoint, NodeServer
from tests.gateway.seats.conftest import SeatPortal, browser_context, launch_in_browser, seat_portal
from tests.gateway.seats.test_guacamole_from_portal import CANVAS_PIXELS, CONSOLE, SAMPLES, SECRET
from tests.support.browser import chromium
from tests.support.cgroups import ensure_cgroup_hierarchies
from tests.support.guacd import RealGuacd, free_port
from tests.support.xrdp import RdpHost, xrdp_host

SCROLLER = """
import tkinter
root = tkinter.Tk(); root.geometry("1280x800+0+0")
text = tkinter.Text(root, font=("DejaVu Sans Mono", 14)); text.pack(fill="both", expand=True)
count = [0]
def tick():
    count[0] += 1
    text.insert("end", f"line {count[0]:6d} " + "scrolling text " * 6 + "\\n"); text.see("end")
    root.after(16, tick)
tick(); root.mainloop()
"""
DLP = {"disable-copy": "true", "disable-paste": "true", "enable-drive": "false", "enable-printing": "false"}


def policy(host: RdpHost) -> str:
    return f"""
version: 1
apps:
  - {{id: customer-console, title: Customer console, backend: x11,
      command: [python, -m, desktop_broker.apps.customer_console]}}
  - {{id: billing, title: Billing, backend: guacamole, protocol: rdp, host: 127.0.0.1, port: {host.port},
      username: {host.username}, cert_fingerprints: ["{host.fingerprint}"]}}
roles:
  supervisor: {{require_client_certificate: false}}
groups:
  SOHO-Agents:
    roles: [agent]
    apps: [customer-console, billing]
    watermark: {{enabled: true, template: "{{user}} {{time}}"}}
"""


def live_x11_seat(portal: SeatPortal) -> PooledSeat:
    """agent1's seat of the live Customer Console lease (earlier rounds' leases have ended)."""
    with Session(portal.engine) as db:
        lease = db.exec(
            select(SeatLease)
            .where(SeatLease.login == "agent1", SeatLease.backend == "x11", SeatLease.state != SeatLeaseState.ENDED)
            .order_by(col(SeatLease.started_at).desc())
        ).first()
    seat = portal.broker.pool.get(lease.seat_id) if lease is not None and portal.broker.pool else None
    assert seat is not None, "agent1 holds no running X11 seat"
    return seat


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def rdp_seat_pss(guacd: RealGuacd, host: RdpHost, server_pids: list[int]) -> dict[str, int]:
    """PSS (KiB) of one connected RDP seat: guacd's connection process, the xrdp forks, the account's session."""
    parts = {"guacd connection": sum(pss_kib(pid) for pid in children_of(guacd.process.pid))}
    parts["xrdp + sesman forks"] = sum(pss_kib(pid) for parent in server_pids for pid in children_of(parent))
    uid = pwd.getpwnam(host.username).pw_uid
    parts["session (Xorg, chansrv, app)"] = sum(pss_kib(pid) for pid in processes_of(uid))
    return parts


def xrdp_servers() -> list[int]:
    """The xrdp and xrdp-sesman daemons this run started (its direct children)."""
    return [
        pid
        for pid in children_of(os.getpid())
        if Path(f"/proc/{pid}/comm").read_text().strip() in ("xrdp", "xrdp-sesman")
    ]


def stream_rate(
    node: NodeServer, endpoint: LaunchEndpoint, protocol: str, parameters: dict[str, str]
) -> tuple[float, float, float]:
    """(frames/s, bytes/s, seconds) a client receives through guacamole-lite and guacd while the app scrolls."""
    token = endpoint.gate.issue_seat_launch(user="bench", seat="bench", protocol=protocol, parameters=parameters).token
    url = f"ws://127.0.0.1:{node.port}/?token={token}&width=1280&height=800"
    with connect(url, subprotocols=[Subprotocol("guacamole")], max_size=None) as socket:
        parser, frames, size = InstructionReader(), 0, 0
        warm_until = time.monotonic() + 3  # the session and the first full screen
        started = None
        while True:
            now = time.monotonic()
            if started is None and now >= warm_until:
                started, frames, size = now, 0, 0
            if started is not None and now - started >= 10:
                return frames / (now - started), size / (now - started), now - started
            message = socket.recv(timeout=10)
            data = message.encode() if isinstance(message, str) else message
            size += len(data)
            for instruction in parser.feed(data):
                if instruction[0] == "sync":
                    frames += 1
                    socket.send(encode("sync", instruction[1]).decode())  # the tunnel carries text frames


def scroll_in(env: dict[str, str], stack: ExitStack) -> None:
    scroller = subprocess.Popen(["/usr/bin/python3", "-c", SCROLLER], env=env)

    def stop() -> None:
        scroller.kill()
        scroller.wait()

    stack.callback(stop)


def vnc_display(stack: ExitStack) -> tuple[dict[str, str], int]:
    """A bare Xvfb + x11vnc (no password, loopback) for the VNC side of the scrolling comparison."""
    number = 90 + os.getpid() % 9
    port = free_port()
    xvfb = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
    stack.callback(xvfb.wait)  # a clean exit removes its /tmp/.X*-lock
    stack.callback(xvfb.terminate)
    time.sleep(0.5)
    env = {**os.environ, "DISPLAY": f":{number}"}
    vnc = subprocess.Popen(
        ["x11vnc", "-display", f":{number}", "-localhost", "-rfbport", str(port), "-nopw", "-forever", "-quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stack.callback(vnc.wait)
    stack.callback(vnc.kill)
    time.sleep(1.0)
    return env, port


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--rounds", type=int, default=4)
    rounds = options.parse_args().rounds
    ensure_cgroup_hierarchies()  # `ip netns exec` hides them; seats need them
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-guacamole-")))
        tmp.chmod(0o755)
        host = stack.enter_context(xrdp_host(CONSOLE))
        guacd = RealGuacd(tmp)
        stack.callback(guacd.stop)
        password = tmp / "billing.password"
        password.write_text(host.password)
        password.chmod(0o600)
        url = f"sqlite:///{tmp / 'sohogw.db'}"
        upgrade(url)
        engine = make_engine(url)
        stack.callback(engine.dispose)
        portal = stack.enter_context(
            seat_portal(
                tmp,
                url,
                engine,
                warm=1,
                cap=4,
                policy=policy(host),
                guacamole_secret=SECRET,
                guacamole_passwords={"billing": password},
            )
        )
        node = NodeServer(guacd.port, f"{portal.base_url}/internal/launch", tmp)
        stack.callback(node.stop)
        portal.broker.settings.guacamole_websocket_url = f"ws://127.0.0.1:{node.port}/"
        browser = stack.enter_context(chromium())

        wait = wait_for_warm_seat(portal)
        print("login click → first frame in Chromium (same run, bench_browser_launch's parts):")
        for fresh in (True, False):
            profile = "fresh" if fresh else "warm"
            x11 = run_profile(browser, portal, rounds, fresh, wait, "customer-console")
            rdp = run_profile(browser, portal, rounds, fresh, wait, "billing")
            report(f"X11 kiosk (baseline), {profile} profile", x11)
            report(f"RDP via guacamole-lite + guacd, {profile} profile", rdp)

        with portal.signed_in("agent1") as agent1:
            context = browser_context(portal, browser, agent1)
            page = context.new_page()
            launch_in_browser(page, portal, "billing")  # a POST with the session's CSRF token, as a click makes it
            page.wait_for_function("window.guacamoleState === 3", timeout=30_000)
            page.evaluate(CANVAS_PIXELS, SAMPLES)
            time.sleep(2)
            rdp_parts = rdp_seat_pss(guacd, host, xrdp_servers())
            context.close()
            page2 = browser_context(portal, browser, agent1).new_page()
            launch_in_browser(page2, portal)
            page2.wait_for_function("window.seatConnected === true", timeout=30_000)
            x11_parts = live_x11_seat(portal).process.pss_kib()
            page2.context.close()
        print("memory per connected seat (PSS):")
        print(f"  X11 seat (baseline) {sum(x11_parts.values()) / 1024:.1f} MiB  {x11_parts}")
        print(f"  RDP seat            {sum(rdp_parts.values()) / 1024:.1f} MiB  {rdp_parts}")

        endpoint = LaunchEndpoint()
        endpoint.thread.start()
        stack.callback(endpoint.server.shutdown)
        direct = NodeServer(guacd.port, endpoint.url, tmp)
        stack.callback(direct.stop)
        scroll_in(host.x_env(), stack)
        rdp_parameters = {
            "hostname": "127.0.0.1",
            "port": str(host.port),
            "username": host.username,
            "password": host.password,
            "cert-fingerprints": host.fingerprint,
            "security": "tls",  # the gate refuses guacd's default "any": FreeRDP checks the pin only in TLS
            **DLP,
        }
        rdp_rate = stream_rate(direct, endpoint, "rdp", rdp_parameters)
        vnc_env, vnc_port = vnc_display(stack)
        scroll_in(vnc_env, stack)
        vnc_parameters = {
            "hostname": "127.0.0.1",
            "port": str(vnc_port),
            "disable-copy": "true",
            "disable-paste": "true",
        }
        vnc_rate = stream_rate(direct, endpoint, "vnc", vnc_parameters)
        print("scrolling app through guacamole-lite and guacd, 10 s each (same run):")
        print(f"  VNC (Xvfb + x11vnc, baseline) {vnc_rate[0]:5.1f} frames/s  {vnc_rate[1] / 1024:8.1f} KiB/s")
        print(f"  RDP (xrdp + xorgxrdp)         {rdp_rate[0]:5.1f} frames/s  {rdp_rate[1] / 1024:8.1f} KiB/s")


if __name__ == "__main__":
    main()
