"""A company's CRL distribution point as IIS or nginx serve it: a static file with ETag, Last-Modified and
Cache-Control, answering conditional GETs with 304. A real HTTP server on 127.0.0.1, in a thread."""

from __future__ import annotations

import hashlib
import threading
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import serialization

CRL_PATH = "/CertEnroll/Corp%20Issuing%20CA.crl"


class CrlDistributionPoint:
    def __init__(self, cache_control: str = "max-age=5") -> None:
        self.cache_control = cache_control
        self.body = b""
        self.etag = ""
        self.last_modified = ""
        self.answers: list[int] = []
        """The status of every answer to a GET of the CRL, in order (200 or 304)."""
        point = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != CRL_PATH or not point.body:
                    self.send_error(404)
                    return
                unchanged = self.headers.get("If-None-Match") == point.etag or (
                    self.headers.get("If-None-Match") is None
                    and self.headers.get("If-Modified-Since") == point.last_modified
                )
                point.answers.append(304 if unchanged else 200)
                self.send_response(304 if unchanged else 200)
                self.send_header("ETag", point.etag)
                self.send_header("Last-Modified", point.last_modified)
                self.send_header("Cache-Control", point.cache_control)
                if unchanged:
                    self.end_headers()
                    return
                self.send_header("Content-Type", "application/pkix-crl")
                self.send_header("Content-Length", str(len(point.body)))
                self.end_headers()
                self.wfile.write(point.body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{CRL_PATH}"

    def publish(self, crl: x509.CertificateRevocationList) -> None:
        """Replace the file, as the CA does when it publishes: a new ETag and Last-Modified."""
        self.body = crl.public_bytes(serialization.Encoding.DER)
        self.etag = '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'
        self.last_modified = formatdate(usegmt=True)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
