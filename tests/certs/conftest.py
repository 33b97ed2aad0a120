"""Fixtures for the certificate library: a fresh CA per test, real files, a real local HTTP server.

`now` is the real current time, because openssl (verify, ocsp) judges validity against the system clock.
"""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certs import Authority, CertState, CertStatus, build_ocsp_response, init_authority

PASSPHRASE = "correct horse battery staple"

# A route answers (method, body) with (content type, body); a missing route answers 404.
Route = Callable[[bytes], tuple[str, bytes]]


class LocalHttpServer:
    """A real HTTP server on 127.0.0.1 in a thread, serving the routes a test registers."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Route] = {}
        self.requests: list[tuple[str, str]] = []
        routes, requests = self.routes, self.requests

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                requests.append((method, self.path))
                route = routes.get((method, self.path))
                if route is None:
                    self.send_error(404)
                    return
                content_type, payload = route(body)
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                self._answer("GET")

            def do_POST(self) -> None:
                self._answer("POST")

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def http_server() -> Iterator[LocalHttpServer]:
    server = LocalHttpServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    return tmp_path / "ca"


@pytest.fixture
def authority(ca_dir: Path, now: datetime) -> Authority:
    return init_authority(ca_dir, PASSPHRASE, "Example Telecom", now)


@pytest.fixture
def wg_key() -> str:
    return base64.b64encode(os.urandom(32)).decode("ascii")


def write_pem(path: Path, *items: x509.Certificate | x509.CertificateRevocationList) -> Path:
    path.write_bytes(b"".join(item.public_bytes(serialization.Encoding.PEM) for item in items))
    return path


def serve_ocsp(server: LocalHttpServer, authority: Authority, statuses: dict[int, CertStatus], now: datetime) -> str:
    """Route POST /ocsp to build_ocsp_response, looking serials up in `statuses` (unknown if absent)."""

    def answer(body: bytes) -> tuple[str, bytes]:
        def lookup(serial: int) -> CertStatus:
            return statuses.get(serial, CertStatus(CertState.UNKNOWN))

        return "application/ocsp-response", build_ocsp_response(authority, body, lookup, now)

    server.routes[("POST", "/ocsp")] = answer
    return f"{server.base_url}/ocsp"
