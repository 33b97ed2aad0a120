"""Where the browser's client certificate and address come from: our own TLS, or a trusted reverse proxy.

With TLS terminated by the gateway, the uvicorn protocol in ``gateway.web.tls`` puts the peer certificate the TLS
layer accepted into the request state. Behind a reverse proxy (nginx with ``ssl_verify_client optional``), the proxy
sends the certificate URL-encoded in a header; that header and X-Forwarded-For are believed only when the TCP peer is
one of the configured proxies — from anyone else they are ignored, so a header cannot forge a certificate.
"""

from dataclasses import dataclass
from ipaddress import ip_address
from urllib.parse import unquote

from cryptography import x509
from fastapi import Request

from gateway.settings import PortalSettings
from gateway.web.tls import PEER_CERTIFICATE


@dataclass(frozen=True)
class ClientOrigin:
    address: str
    certificate: x509.Certificate | None
    via_proxy: bool


def _from_trusted_proxy(request: Request, portal: PortalSettings) -> bool:
    if request.client is None or not portal.trusted_proxies:
        return False
    try:
        peer = ip_address(request.client.host)
    except ValueError:
        return False
    return any(peer in network for network in portal.trusted_proxies)


def client_origin(request: Request, portal: PortalSettings) -> ClientOrigin:
    peer = request.client.host if request.client else ""
    if _from_trusted_proxy(request, portal):
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
