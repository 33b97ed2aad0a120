"""The gateway's own WireGuard key pair (X25519, base64 as `wg genkey` prints), made once and kept private."""

import base64
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gateway.vpn.backend import WireGuardError

_RAW = serialization.Encoding.Raw


def public_key_of(private_key: str) -> str:
    """The base64 public key (`wg pubkey`) of a base64 private key."""
    raw = base64.b64decode(private_key, validate=True)
    public = X25519PrivateKey.from_private_bytes(raw).public_key()
    return base64.b64encode(public.public_bytes(_RAW, serialization.PublicFormat.Raw)).decode()


def load_or_create_private_key(path: Path) -> str:
    """Read the key file, or write a new key to it with mode 0600 on first start; refuse a readable-by-others file."""
    if path.exists():
        if path.stat().st_mode & 0o077:
            raise WireGuardError(
                f"{path} holds the gateway's WireGuard private key and is readable by others; chmod 600"
            )
        key = path.read_text().strip()
        try:
            public_key_of(key)
        except ValueError as error:
            raise WireGuardError(f"{path} does not hold a WireGuard private key (base64, 32 bytes): {error}") from None
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    private = X25519PrivateKey.generate()
    key = base64.b64encode(
        private.private_bytes(_RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    ).decode()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(key + "\n")
    return key
