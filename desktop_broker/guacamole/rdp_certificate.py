"""Read the certificate an RDP host presents, as guacd's FreeRDP will see it: for trust on first use.

An RDP connection starts in the clear (MS-RDPBCGR 2.2.1.1: a TPKT-framed X.224 Connection Request carrying an
RDP_NEG_REQ); the server answers which security protocol it selected and, for TLS or CredSSP (NLA), the TLS
handshake follows on the same socket. Its certificate is what FreeRDP compares with `cert-fingerprints`. Nothing
is sent after the handshake: no credentials, no session.
"""

import hashlib
import socket
import ssl
import struct

PROTOCOL_SSL = 0x1
PROTOCOL_HYBRID = 0x2
_TYPE_NEG_RSP = 0x02
_TYPE_NEG_FAILURE = 0x03


class RdpCertificateUnavailable(Exception):
    """The host could not be reached, or offered no TLS (standard RDP security has no certificate to pin)."""


def _connection_request() -> bytes:
    negotiation = struct.pack("<BBHI", 0x01, 0, 8, PROTOCOL_SSL | PROTOCOL_HYBRID)
    x224 = bytes([6 + len(negotiation), 0xE0, 0, 0, 0, 0, 0]) + negotiation
    return struct.pack(">BBH", 3, 0, 4 + len(x224)) + x224


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise RdpCertificateUnavailable("the RDP host closed the connection during negotiation")
        data += chunk
    return data


def _negotiate_tls(sock: socket.socket) -> None:
    sock.sendall(_connection_request())
    version, _, length = struct.unpack(">BBH", _read_exactly(sock, 4))
    if version != 3 or not 11 <= length <= 512:
        raise RdpCertificateUnavailable("the host did not answer as an RDP server (no TPKT)")
    confirm = _read_exactly(sock, length - 4)
    negotiation = confirm[7:]
    if len(negotiation) < 8:
        raise RdpCertificateUnavailable("the RDP host offers only standard RDP security: no certificate to trust")
    kind, _, _, value = struct.unpack("<BBHI", negotiation[:8])
    if kind == _TYPE_NEG_FAILURE:
        raise RdpCertificateUnavailable(f"the RDP host refused TLS negotiation (failure code {value})")
    if kind != _TYPE_NEG_RSP or not value & (PROTOCOL_SSL | PROTOCOL_HYBRID):
        raise RdpCertificateUnavailable("the RDP host selected no TLS-based security: no certificate to trust")


def rdp_certificate_fingerprint(host: str, port: int, timeout: float = 3.0) -> str:
    """``sha256:ab:cd:…`` of the certificate the RDP host presents (the form `cert-fingerprints` takes)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # Reading the certificate is the point: nothing is trusted here, the caller pins (or compares) what it gets.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            _negotiate_tls(sock)
            with context.wrap_socket(sock, server_hostname=host) as tls:
                der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as error:
        raise RdpCertificateUnavailable(f"could not read the certificate of {host}:{port}: {error}") from error
    if not der:
        raise RdpCertificateUnavailable(f"{host}:{port} presented no certificate")
    digest = hashlib.sha256(der).hexdigest()
    return "sha256:" + ":".join(digest[i : i + 2] for i in range(0, 64, 2))
