"""Where the browser's client certificate and address come from: our own TLS, or a reverse proxy that proved itself.

With TLS terminated by the gateway, the uvicorn protocol in ``gateway.web.tls`` puts the peer certificate the TLS
layer accepted into the request state. Behind a reverse proxy (nginx with ``ssl_verify_client optional_no_ca``,
HAProxy), the proxy sends the certificate URL-encoded in a header. That header and X-Forwarded-For are believed only
when the request both carries the proxy's secret (``portal.proxy_secret``) in ``X-Sohogw-Proxy-Secret`` and comes
from one of the proxy's addresses (``portal.proxy_addresses``). Neither is enough alone: every local process (a
seat's user too) can connect from 127.0.0.1, and a secret sent in plaintext between proxy and node can be sniffed
and replayed from anywhere. With ``portal.proxy_certificate_file`` the proxy must also have presented that
certificate in the TLS handshake of the connection (the hop is encrypted, so there is no secret to sniff).
Forwarding headers from anyone else are ignored, and ``audit_unproven_forwarding`` audits each such request, folded
(``gateway.audit.folding``): at most one row per peer address and outcome a minute, whose ``requests`` count the
requests it stands for.
"""

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from ipaddress import IPv6Address, ip_address
from pathlib import Path
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fastapi import Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

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


def _from_proxy_address(request: HTTPConnection, portal: PortalSettings) -> bool:
    """The TCP peer is one of the proxy's addresses (an IPv4 peer seen on a dual-stack socket as ``::ffff:a.b.c.d``
    is compared as the IPv4 address it is)."""
    try:
        peer = ip_address(request.client.host if request.client else "")
    except ValueError:
        return False
    if isinstance(peer, IPv6Address) and peer.ipv4_mapped is not None:
        peer = peer.ipv4_mapped
    return any(peer in network for network in portal.proxy_addresses)


@cache
def _proxy_certificate_der(path: Path) -> bytes:
    """The proxy's certificate as the TLS layer hands peers over (DER); read once, checked readable at start."""
    return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(serialization.Encoding.DER)


def unproven_because(request: HTTPConnection, portal: PortalSettings) -> str | None:
    """Why the request is not the proxy's (the audit outcome), or None when it is: the configured secret (compared
    in constant time) from one of the proxy's addresses and, with ``proxy_certificate_file``, on a TLS connection
    whose peer presented that certificate."""
    given = request.headers.get(PROXY_SECRET_HEADER)
    if given is None:
        return "proxy_secret_missing"
    if portal.proxy_secret is None or not hmac.compare_digest(
        portal.proxy_secret.get_secret_value().encode(), given.encode()
    ):
        return "proxy_secret_wrong"
    if not _from_proxy_address(request, portal):
        return "proxy_address_not_allowed"
    if portal.proxy_certificate_file is not None:
        presented = request.scope.get("state", {}).get(PEER_CERTIFICATE)
        if presented != _proxy_certificate_der(portal.proxy_certificate_file):
            return "proxy_certificate_wrong"
    return None


def proxy_proven(request: HTTPConnection, portal: PortalSettings) -> bool:
    """The request came through the reverse proxy: its forwarded certificate and address are believed."""
    return unproven_because(request, portal) is None


def forwarding_headers(request: Request, portal: PortalSettings) -> list[str]:
    """The names of the headers in which a proxy speaks for the browser (certificate, address) that this request has."""
    names = (portal.client_cert_header.lower(), *FORWARDED_ADDRESS_HEADERS)
    return [name for name in names if name in request.headers]


def client_origin(request: HTTPConnection, portal: PortalSettings) -> ClientOrigin:
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


def client_address(connection: HTTPConnection) -> str:
    """The browser's address, for audit rows and throttles: what the proven proxy forwarded, else the TCP peer.

    Every audit row names a person's address this way; behind HAProxy the TCP peer is HAProxy itself."""
    return client_origin(connection, connection.app.state.settings.portal).address


def _audit_ignored(request: Request, names: list[str], because: str) -> None:
    peer = request.client.host if request.client else ""
    key = RefusalKey("proxy.forwarding_ignored", peer, because)
    now = request.app.state.clock()
    row = request.app.state.folded_refusals.refusal(key, request.url.path[:255], {"headers": names}, now)
    if row is not None:
        write_folded(request.app.state.engine, row, now)


async def audit_unproven_forwarding(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """HTTP middleware: a request that speaks for a browser without the proxy's proof is served as the peer's own
    (``client_origin`` ignores its headers) and audited, folded, so a forging local process or a misconfigured proxy
    shows without being able to flood the audit log."""
    portal = request.app.state.settings.portal
    names = forwarding_headers(request, portal)
    because = unproven_because(request, portal) if names else None
    if because is not None:
        await run_in_threadpool(_audit_ignored, request, names, because)
    return await call_next(request)
