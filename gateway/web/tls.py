"""TLS terminated by the gateway itself, asking browsers for a client certificate.

uvicorn does not hand the peer certificate to the application, so this protocol subclass reads it from the TLS
connection once and places it in the per-connection state that uvicorn copies into every request's scope.
The certificate is still fully verified by the login (chain, revocation, identity); the TLS layer only proves the
browser holds its key.
"""

import asyncio
import ssl
from pathlib import Path

from uvicorn.protocols.http.h11_impl import H11Protocol

PEER_CERTIFICATE = "sohogw.peer_certificate_der"


class ClientCertificateProtocol(H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object: ssl.SSLObject | None = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        self.app_state = {**self.app_state, PEER_CERTIFICATE: der}


def tls_options(cert_file: Path, key_file: Path, client_ca_file: Path) -> dict[str, object]:
    """uvicorn.Config keyword arguments for HTTPS that requests (does not require) a client certificate."""
    return {
        "ssl_certfile": str(cert_file),
        "ssl_keyfile": str(key_file),
        "ssl_ca_certs": str(client_ca_file),
        "ssl_cert_reqs": ssl.CERT_OPTIONAL,
        "http": ClientCertificateProtocol,
    }
