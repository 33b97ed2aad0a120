"""A minimal RFB viewer that proves a seat serves pixels: authenticate and wait for the first frame.

The pool uses it to check a warm seat before handing it out; the bench uses it to time cold starts.
Only RFB 3.8 with VNC authentication (RFC 6143 §7.2.2) is spoken, which is all x11vnc offers here.
"""

import socket
import struct
import time

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from desktop_broker.x11.errors import SeatStartFailed
from desktop_broker.x11.spec import RfbAddress

_VNC_AUTH = 2
_RAW_ENCODING = 0
RFB_VERSION = b"RFB 003.008\n"
"""The ProtocolVersion every client of a seat sends as soon as it connects, before reading the server's.

RFC 6143 §7.1.1 has the server speak first, but x11vnc's libvncserver (built with WebSocket support, as Debian's
is) first peeks up to 100 ms at a new connection for a WebSocket or TLS client's opening bytes (`webSocketsCheck`,
`WEBSOCKETS_CLIENT_CONNECT_WAIT_MS`) and greets only when they are "RFB " or the wait is over: a client that
waits for the greeting pays those 100 ms on every connection (measured on a warm seat, four runs: the greeting's p50
114–265 ms → 11–54 ms). x11vnc speaks 3.8, so ours can go first; a server's version other than 3.x is still refused
after it."""


def vnc_auth_response(password: str, challenge: bytes) -> bytes:
    """DES-encrypt the 16-byte challenge with the password, each key byte's bits mirrored (RFB quirk)."""
    key = bytes(int(f"{byte:08b}"[::-1], 2) for byte in password.encode()[:8].ljust(8, b"\0"))
    encryptor = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()  # noqa: S305 - RFB fixes DES-ECB
    return encryptor.update(challenge) + encryptor.finalize()


def open_authenticated(address: RfbAddress, password: str, timeout: float = 10.0) -> socket.socket:
    """Connect and pass VNC authentication; the connection stops before ClientInit, ready for a viewer to go on."""
    sock = socket.create_connection((address.host, address.port), timeout=timeout)
    try:
        sock.settimeout(timeout)
        sock.sendall(RFB_VERSION)
        if not _recv(sock, 12).startswith(b"RFB 003."):
            raise SeatStartFailed(f"{address} does not speak RFB")
        types = _recv(sock, _recv(sock, 1)[0])
        if _VNC_AUTH not in types:
            raise SeatStartFailed(f"{address} offers no VNC authentication (types {list(types)})")
        sock.sendall(bytes([_VNC_AUTH]))
        sock.sendall(vnc_auth_response(password, _recv(sock, 16)))
        if struct.unpack(">I", _recv(sock, 4))[0] != 0:
            raise SeatStartFailed(f"{address} refused the password")
    except BaseException:
        sock.close()
        raise
    return sock


def wait_for_first_frame(address: RfbAddress, password: str, timeout: float = 10.0) -> float:
    """Connect, authenticate, request the whole screen; return seconds until a FramebufferUpdate arrives."""
    started = time.monotonic()
    with open_authenticated(address, password, timeout) as sock:
        sock.sendall(b"\x01")  # ClientInit: shared, so the agent's own session is not disconnected
        width, height = struct.unpack(">HH", _recv(sock, 4))
        _recv(sock, 16)
        _recv(sock, struct.unpack(">I", _recv(sock, 4))[0])
        sock.sendall(struct.pack(">BxHi", 2, 1, _RAW_ENCODING))
        sock.sendall(struct.pack(">BBHHHH", 3, 0, 0, 0, width, height))
        while (message_type := _recv(sock, 1)[0]) != 0:
            if message_type == 2:  # Bell carries no payload; x11vnc sends nothing else unasked
                continue
            raise SeatStartFailed(f"{address} sent unexpected message type {message_type}")
    return time.monotonic() - started


def _recv(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise SeatStartFailed("the seat closed the RFB connection")
        data += chunk
    return data
