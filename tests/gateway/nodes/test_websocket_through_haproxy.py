"""A websocket through HAProxy outlives its idle timeouts: once upgraded, ``timeout tunnel`` (12 h, for a seat's
pixels or a watch) governs it, not ``timeout client``/``timeout server``. Run with the shipped haproxy.cfg whose
client and server timeouts alone are cut to one second, the socket stays open across twice that idle; the control,
the same file without ``timeout tunnel``, is cut, so the test tells the line that does it.

The upstreams are small uvicorn apps (``/healthz`` and an echo websocket), not gateway nodes: a seat websocket needs a
running seat, and what is under test here is HAProxy's configuration, which treats every upgraded connection alike.
"""

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

IDLE = 1
"""The client and server timeouts of the test's variant of haproxy.cfg, in seconds."""


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


def test_without_timeout_tunnel_the_idle_timeouts_cut_the_websocket(
    upstreams: dict[str, str], hop: Hop, tmp_path: Path
) -> None:
    with pytest.raises(ConnectionClosed):
        _echo_after_idle(upstreams, hop, tmp_path, tunnel=False)
