"""Where the browser's client certificate and address come from: our own TLS, or a reverse proxy that proved itself.

With TLS terminated by the gateway, the uvicorn protocol in ``gateway.web.tls`` puts the peer certificate the TLS
layer accepted into the request state. Behind a reverse proxy (nginx with ``ssl_verify_client optional_no_ca``),
the proxy sends the certificate URL-encoded in a header. That header and X-Forwarded-For are believed only when the
request carries the proxy's secret (``portal.proxy_secret``) in ``X-Sohogw-Proxy-Secret``: a TCP peer address
proves nothing, since every local process (a seat's user too) can connect from 127.0.0.1. Forwarding headers from
anyone else are ignored, and ``audit_unproven_forwarding`` audits each such request, folded (``gateway.audit.folding``):
at most one row per peer address and outcome a minute, whose ``requests`` count the requests it stands for.
"""

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import unquote

from cryptography import x509
from fastapi import Request, Response
from starlette.concurrency import run_in_threadpool

from gateway.audit.folding import RefusalKey, write_folded
from gateway.sessions.settings import PortalSettings
from gateway.web.tls import PEER_CERTIFICATE

PROXY_SECRET_HEADER = "x-sohogw-proxy-secret"  # noqa: S105 - the header's name, not a secret
FORWARDED_ADDRESS_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")


@dataclass(frozen=True)
class ClientOrigin:
    address: str
    certificate: x509.Certificate | None
    via_proxy: bool


def proxy_proven(request: Request, portal: PortalSettings) -> bool:
    """The request carries the configured proxy secret (compared in constant time)."""
    given = request.headers.get(PROXY_SECRET_HEADER)
    if portal.proxy_secret is None or given is None:
        return False
    return hmac.compare_digest(portal.proxy_secret.get_secret_value().encode(), given.encode())


def forwarding_headers(request: Request, portal: PortalSettings) -> list[str]:
    """The names of the headers in which a proxy speaks for the browser (certificate, address) that this request has."""
    names = (portal.client_cert_header.lower(), *FORWARDED_ADDRESS_HEADERS)
    return [name for name in names if name in request.headers]


def client_origin(request: Request, portal: PortalSettings) -> ClientOrigin:
    peer = request.client.host if request.client else ""
    if proxy_proven(request, portal):
        forwarded = request.headers.get("x-forwarded-for", "")
        address = forwarded.split(",")[-1].strip() or peer
        header = request.headers.get(portal.client_cert_header.lower(), "")
        certificate = None
        if header:
            try:
                certificate = x509.load_pem_x509_certificate(unquote(header).encode())
            except ValueError:
                certificate = None  # the proxy sent garbage: treat as no certificate, the login then says so
        return ClientOrigin(address, certificate, via_proxy=True)
    der = request.scope.get("state", {}).get(PEER_CERTIFICATE)
    return ClientOrigin(peer, x509.load_der_x509_certificate(der) if der else None, via_proxy=False)


def _audit_ignored(request: Request, names: list[str]) -> None:
    proof = "wrong" if PROXY_SECRET_HEADER in request.headers else "missing"
    peer = request.client.host if request.client else ""
    key = RefusalKey("proxy.forwarding_ignored", peer, f"proxy_secret_{proof}")
    now = request.app.state.clock()
    row = request.app.state.folded_refusals.refusal(key, request.url.path[:255], {"headers": names}, now)
    if row is not None:
        write_folded(request.app.state.engine, row, now)


async def audit_unproven_forwarding(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """HTTP middleware: a request that speaks for a browser without the proxy's proof is served as the peer's own
    (``client_origin`` ignores its headers) and audited, folded, so a forging local process or a misconfigured proxy
    shows without being able to flood the audit log."""
    names = forwarding_headers(request, request.app.state.settings.portal)
    if names and not proxy_proven(request, request.app.state.settings.portal):
        await run_in_threadpool(_audit_ignored, request, names)
    return await call_next(request)
