"""The launch token guacamole-lite 1.2.0 accepts, minted the way its `Crypt.decrypt` reads it.

Envelope: base64 of the JSON `{"iv": b64(16 bytes), "value": b64(AES-256-CBC(plaintext), PKCS7)}`.
guacamole-lite decodes the plaintext as 'ascii', so the JSON is emitted with `\\u` escapes only.

The envelope carries no MAC: flipping bits of the IV rewrites the first plaintext block, flipping
ciphertext bits garbles one block and rewrites the next. The token is therefore never the authority
on its own; `gate.LaunchGate` records the SHA-256 of every token it mints and guacamole-lite's
front (deploy/guacamole-lite/server.js) redeems that digest once before guacd is contacted.
"""

import base64
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_BYTES = 32
_KEY_INFO = b"sohogw guacamole-lite token key v1"


class TokenKeyError(ValueError):
    """The token key is not usable; the broker must not mint with it."""


@dataclass(frozen=True, slots=True)
class GuacamoleConnection:
    """What guacamole-lite turns into guacd's handshake: `select` target plus `connect` values.

    `join` is guacd's connection id (`$…`) for a supervisor joining a live seat; `protocol` is
    then only informative, guacd answers with the joined connection's own arguments.
    """

    protocol: str
    settings: Mapping[str, str]
    join: str | None = None

    def as_token_json(self) -> dict[str, object]:
        connection: dict[str, object] = {"type": self.protocol, "settings": dict(self.settings)}
        if self.join is not None:
            connection["join"] = self.join
        return {"connection": connection}


def derive_token_key(broker_secret: bytes) -> bytes:
    """The 32-byte AES key shared with guacamole-lite, derived so the broker secret never leaves it.

    Give guacamole-lite the hex of this key (`GUACLITE_KEY_HEX`); rotating the broker secret
    rotates it.
    """
    if len(broker_secret) < KEY_BYTES:
        raise TokenKeyError(f"the broker secret must be at least {KEY_BYTES} bytes, got {len(broker_secret)}")
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=_KEY_INFO).derive(broker_secret)


def mint_token(key: bytes, connection: GuacamoleConnection, launch_id: str) -> str:
    """Encrypt `connection` plus the one-time `launch_id` into a guacamole-lite token.

    The launch id sits beside `connection` at the top level; guacamole-lite ignores keys it does
    not know, and server.js reads it to redeem the launch.
    """
    if len(key) != KEY_BYTES:
        raise TokenKeyError(f"guacamole-lite uses AES-256: the key must be {KEY_BYTES} bytes, got {len(key)}")
    document = {**connection.as_token_json(), "launch": launch_id}
    plaintext = json.dumps(document, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    padder = padding.PKCS7(algorithms.AES.block_size).padder()
    padded = padder.update(plaintext) + padder.finalize()
    iv = os.urandom(16)
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    envelope = {"iv": _b64(iv), "value": _b64(ciphertext)}
    return _b64(json.dumps(envelope, separators=(",", ":")).encode("ascii"))


def token_digest(token: str) -> str:
    """The digest server.js sends with a redemption: any change to the token changes it."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
