"""Run an ASGI app on a real loopback socket in a background thread, for clients that speak real HTTP."""

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import uvicorn
from fastapi import FastAPI

from gateway.web.tls import ClientCertificateConfig


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serving(
    app: FastAPI,
    host: str = "127.0.0.1",
    port: int | None = None,
    tls: dict[str, object] | None = None,
    inside: Callable[[], AbstractContextManager[None]] = nullcontext,
) -> Iterator[str]:
    """Yield the base URL while uvicorn serves ``app``; shut it down afterwards.

    ``tls`` takes the options of ``gateway.web.tls.tls_options`` to serve HTTPS asking for a client certificate, which
    the gateway's own uvicorn configuration lets through the handshake for the application to judge.
    ``inside`` is entered by the server's thread before it listens (``tests.vpn.netns.inside`` serves from a
    network namespace); give a ``port`` then, the free one is found in this thread's namespace.
    """
    port = port or free_port()
    config = ClientCertificateConfig(
        app, host=host, port=port, log_level="warning", lifespan="on", proxy_headers=False, **(tls or {})
    )
    server = uvicorn.Server(config)

    def run() -> None:
        with inside():
            server.run()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"{'https' if tls else 'http'}://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
