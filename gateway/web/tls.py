"""TLS terminated by the gateway itself, asking browsers for a client certificate and judging it in the application.

The TLS layer accepts any client certificate it can parse and whose key the browser proves it holds; the login then
verifies it fully (chain, validity, purpose, revocation, identity) and, when it refuses, tells the person why in
words they can act on and writes an audit row. Left to OpenSSL, an expired, forged (unknown issuer) or wrong-purpose
certificate ends the handshake with an alert: the person sees a bare browser error and nothing is recorded.

Python's ``ssl`` module has no verify callback, and no ``verify_flags`` value helps with an unknown issuer or a
missing clientAuth purpose (``X509_V_FLAG_NO_CHECK_TIME`` covers expiry only). So ``accept_any_client_certificate``
sets OpenSSL's ``SSL_CTX_set_cert_verify_callback`` on the context uvicorn builds, through ``ctypes``, to a callback
that accepts the chain. What still happens in OpenSSL: the certificate is parsed, and the CertificateVerify signature
is checked against its public key (RFC 8446 §4.4.3), so the browser holds the key. The context's ``SSL_CTX`` pointer
is read from CPython's object layout and checked against the context's own options before anything is set: if the
check fails the gateway refuses to start rather than guess.

uvicorn does not hand the peer certificate to the application, so ``ClientCertificateProtocol`` reads it from the
TLS connection once and places it in the per-connection state that uvicorn copies into every request's scope.
"""

import asyncio
import ctypes
import ssl
from pathlib import Path

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

PEER_CERTIFICATE = "sohogw.peer_certificate_der"

# int (*cb)(X509_STORE_CTX *, void *arg): 1 accepts the chain; the application judges the certificate.
_VerifyCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
_ACCEPT_CHAIN = _VerifyCallback(lambda _store, _arg: 1)  # module-level: must outlive every context using it


class TlsSetupError(RuntimeError):
    """The client-certificate TLS set-up cannot be made safely on this Python/OpenSSL; the gateway does not start."""


def _ssl_ctx_pointer(context: ssl.SSLContext, libssl: ctypes.CDLL) -> int:
    """The ``SSL_CTX *`` of ``context``: the first field after the object header of CPython's ``PySSLContext``."""
    pointer = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
    libssl.SSL_CTX_get_options.restype = ctypes.c_uint64
    libssl.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
    libssl.SSL_CTX_get_verify_mode.restype = ctypes.c_int
    libssl.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
    if (
        not pointer
        or libssl.SSL_CTX_get_options(pointer) != int(context.options)
        or libssl.SSL_CTX_get_verify_mode(pointer) != int(context.verify_mode)
    ):
        raise TlsSetupError("cannot reach OpenSSL's context of this Python's ssl module; client certificates are off")
    return pointer


def accept_any_client_certificate(context: ssl.SSLContext) -> None:
    """Ask for a client certificate and let every parseable one through the handshake (see the module doc)."""
    if not ssl.OPENSSL_VERSION.startswith("OpenSSL 3."):
        raise TlsSetupError(f"client certificates need OpenSSL 3 under Python's ssl module, not {ssl.OPENSSL_VERSION}")
    context.verify_mode = ssl.CERT_OPTIONAL
    libssl = ctypes.CDLL("libssl.so.3")  # the library the _ssl module is linked with, already loaded
    pointer = _ssl_ctx_pointer(context, libssl)
    libssl.SSL_CTX_set_cert_verify_callback.restype = None
    libssl.SSL_CTX_set_cert_verify_callback.argtypes = [ctypes.c_void_p, _VerifyCallback, ctypes.c_void_p]
    libssl.SSL_CTX_set_cert_verify_callback(pointer, _ACCEPT_CHAIN, None)


class ClientCertificateProtocol(H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object: ssl.SSLObject | None = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        self.app_state = {**self.app_state, PEER_CERTIFICATE: der}


class ClientCertificateConfig(uvicorn.Config):
    """uvicorn's configuration, with the TLS context it builds made to accept any client certificate."""

    def load(self) -> None:
        super().load()
        if self.ssl is not None and self.ssl_cert_reqs != ssl.CERT_NONE:
            accept_any_client_certificate(self.ssl)


def tls_options(cert_file: Path, key_file: Path, client_ca_file: Path) -> dict[str, object]:
    """``ClientCertificateConfig`` keyword arguments for HTTPS that requests (does not require) a client certificate.

    The CA bundle is kept for OpenSSL's set-up; since the application judges every certificate it decides nothing."""
    return {
        "ssl_certfile": str(cert_file),
        "ssl_keyfile": str(key_file),
        "ssl_ca_certs": str(client_ca_file),
        "ssl_cert_reqs": ssl.CERT_OPTIONAL,
        "http": ClientCertificateProtocol,
    }
