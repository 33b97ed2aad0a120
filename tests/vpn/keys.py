"""WireGuard key pairs for tests, made with `cryptography` (X25519, the curve WireGuard uses)."""

import base64

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey


def key_pair() -> tuple[str, str]:
    """(private, public) as base64, the same text `wg genkey | wg pubkey` prints."""
    private = X25519PrivateKey.generate()
    raw = serialization.Encoding.Raw
    private_bytes = private.private_bytes(raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    public_bytes = private.public_key().public_bytes(raw, serialization.PublicFormat.Raw)
    return base64.b64encode(private_bytes).decode(), base64.b64encode(public_bytes).decode()
