"""A websocket through HAProxy outlives its idle timeouts: once upgraded, ``timeout tunnel`` (12 h, for a seat's
pixels or a watch) governs it, not ``timeout client``/``timeout server``. Run with the shipped haproxy.cfg whose
client and server timeouts alone are cut to three seconds, the socket stays open across twice that idle; the control,
the same file without ``timeout tunnel``, is cut, so the test tells the line that does it.

The upstreams are small uvicorn apps (``/healthz`` and an echo websocket), not gateway nodes: a seat websocket needs a
running seat, and what is under test here is HAProxy's configuration, which treats every upgraded connection alike.
"""

import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from gateway.web.tls import tls_options
from tests.gateway.nodes.cluster import HAPROXY_CONFIG, Hop, haproxy
from tests.support.components import require_programs
from tests.support.portal import PROXY_SECRET
from tests.support.server import serving

pytestmark = pytest.mark.e2e

IDLE = 3
"""The client and server timeouts of the test's variant of haproxy.cfg, in seconds. They also bound the TLS handshake
and the upgrade request: at 1 s a loaded CI machine once got a 408 before the websocket opened."""


def _echo(name: str) -> FastAPI:
    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"node": name}

    @app.websocket("/ws")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                await websocket.send_text(await websocket.receive_text())
        except WebSocketDisconnect:
            return

    return app


@pytest.fixture(scope="module")
def hop(tmp_path_factory: pytest.TempPathFactory) -> Hop:
    return Hop.made_in(tmp_path_factory.mktemp("hop"))


@pytest.fixture(scope="module")
def upstreams(hop: Hop) -> Iterator[dict[str, str]]:
    """The two upstreams, serving TLS as the nodes do behind HAProxy: name → address:port."""
    require_programs("haproxy", install="Debian: apt-get install haproxy")
    tls = tls_options(hop.node_cert, hop.node_key, hop.proxy_cert)
    with ExitStack() as stack:
        yield {name: stack.enter_context(serving(_echo(name), tls=tls)).removeprefix("https://") for name in ("a", "b")}


def _variant(scratch: Path, tunnel: bool) -> Path:
    """The shipped file with ``timeout client``/``server`` cut to ``IDLE`` (and ``timeout tunnel`` kept or not)."""
    text = HAPROXY_CONFIG.read_text()
    for timeout in ("client", "server"):
        assert text.count(f"timeout {timeout} 60s") == 1
        text = text.replace(f"timeout {timeout} 60s", f"timeout {timeout} {IDLE}s")
    assert text.count("timeout tunnel 12h") == 1
    if not tunnel:
        text = text.replace("timeout tunnel 12h", "")
    variant = scratch / "haproxy.cfg"
    variant.write_text(text)
    return variant


def _echo_after_idle(upstreams: dict[str, str], hop: Hop, scratch: Path, tunnel: bool) -> str:
    """Open a websocket through HAProxy, echo once, stay idle for twice the timeouts, then echo again."""
    tls = ssl.create_default_context()
    tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE  # the test's own self-signed portal
    with ExitStack() as stack:
        url, _ = stack.enter_context(haproxy(upstreams, scratch, PROXY_SECRET, hop, _variant(scratch, tunnel)))
        websocket = stack.enter_context(connect(url.replace("https://", "wss://") + "/ws", ssl=tls, open_timeout=10))
        websocket.send("before")
        assert websocket.recv(timeout=5) == "before"
        time.sleep(2 * IDLE + 0.5)
        websocket.send("after")
        return str(websocket.recv(timeout=5))


def test_a_websocket_stays_open_across_twice_the_idle_timeouts(
    upstreams: dict[str, str], hop: Hop, tmp_path: Path
) -> None:
    assert _echo_after_idle(upstreams, hop, tmp_path, tunnel=True) == "after"


def test_headers_trickled_to_hold_a_connection_open_are_cut_by_the_request_timeout(
    upstreams: dict[str, str], hop: Hop, tmp_path: Path
) -> None:
    """Slowloris: a client that sends a header line every half second never idles for ``timeout client`` (60 s), so
    only ``timeout http-request`` (10 s in the shipped file; 2 s in this variant of it, to keep the test short) cuts
    it, with a 408."""
    shipped = HAPROXY_CONFIG.read_text()
    assert shipped.count("timeout http-request 10s") == 1
    variant = tmp_path / "haproxy.cfg"
    variant.write_text(shipped.replace("timeout http-request 10s", "timeout http-request 2s"))
    tls = ssl.create_default_context()
    tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE  # the test's own self-signed portal
    with haproxy(upstreams, tmp_path, PROXY_SECRET, hop, variant) as (url, _):
        host, port = url.removeprefix("https://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=30) as raw, tls.wrap_socket(raw) as connection:
            started = time.monotonic()
            connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: portal\r\n")
            with pytest.raises(OSError):  # the write after HAProxy closed the connection
                for line in range(40):
                    connection.sendall(b"X-Trickle-%d: 1\r\n" % line)
                    time.sleep(0.5)
            answer = b"".join(iter(lambda: connection.recv(65536), b""))
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert 1.5 < time.monotonic() - started < 5


def test_without_timeout_tunnel_the_idle_timeouts_cut_the_websocket(
    upstreams: dict[str, str], hop: Hop, tmp_path: Path
) -> None:
    with pytest.raises(ConnectionClosed):
        _echo_after_idle(upstreams, hop, tmp_path, tunnel=False)
