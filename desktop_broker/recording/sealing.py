"""Recordings at rest: AES-256-GCM in 1 MiB chunks (a STREAM construction), with a key kept under the data dir.

A sealed file is ``MAGIC || nonce prefix (7 bytes)`` followed by the chunks, each ``AES-GCM(plaintext ≤ 1 MiB)``
with nonce ``prefix || chunk number (4 bytes) || last-chunk flag (1 byte)`` and the header plus the recording's
id as associated data. So a chunk cannot be altered, moved, dropped or taken from another recording, and a file
cut short fails (its new last chunk was not sealed as last). Chunks keep memory flat however long the recording,
and let playback stream without decrypting the whole file first.
"""

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"SOHOREC1"
PREFIX_BYTES = 7
CHUNK = 1024 * 1024
TAG = 16
KEY_BYTES = 32


class SealBroken(Exception):
    """A sealed recording failed authentication: altered, truncated, or sealed with another key or id."""


def load_or_create_key(path: Path) -> bytes:
    """The recordings key: created once (0600, ``O_EXCL``), refused when others may read it or it is the wrong size."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as new:
            new.write(secrets.token_bytes(KEY_BYTES))
    if path.stat().st_mode & 0o077:
        raise PermissionError(f"the recordings key {path} is readable by others; chmod 600 it")
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise ValueError(f"the recordings key {path} is not {KEY_BYTES} bytes")
    return key


def _nonce(prefix: bytes, number: int, last: bool) -> bytes:
    return prefix + number.to_bytes(4, "big") + (b"\1" if last else b"\0")


def seal_file(key: bytes, recording_id: str, plaintext: Path, sealed: Path) -> int:
    """Encrypt `plaintext` into `sealed` (0600, written beside and renamed into place); returns its size.

    The caller removes the plaintext afterwards; until then it is exposed to whoever may read its directory.
    """
    aead = AESGCM(key)
    prefix = secrets.token_bytes(PREFIX_BYTES)
    header = MAGIC + prefix
    associated = header + recording_id.encode()
    partial = sealed.with_name(sealed.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out, plaintext.open("rb") as source:
        out.write(header)
        number = 0
        chunk = source.read(CHUNK)
        while True:
            following = source.read(CHUNK)
            last = not following
            out.write(aead.encrypt(_nonce(prefix, number, last), chunk, associated))
            if last:
                break
            chunk, number = following, number + 1
        out.flush()
        os.fsync(out.fileno())
    partial.rename(sealed)
    return sealed.stat().st_size


def open_sealed(key: bytes, recording_id: str, sealed: Path) -> Iterator[bytes]:
    """The plaintext, chunk by chunk; `SealBroken` as soon as a chunk (or the end) does not authenticate."""
    aead = AESGCM(key)
    with sealed.open("rb") as source:
        header = source.read(len(MAGIC) + PREFIX_BYTES)
        if len(header) != len(MAGIC) + PREFIX_BYTES or not header.startswith(MAGIC):
            raise SealBroken(f"{sealed.name} is not a sealed recording")
        prefix, associated = header[len(MAGIC) :], header + recording_id.encode()
        number = 0
        chunk = source.read(CHUNK + TAG)
        while True:
            following = source.read(CHUNK + TAG)
            try:
                yield aead.decrypt(_nonce(prefix, number, not following), chunk, associated)
            except InvalidTag:
                raise SealBroken(f"{sealed.name}: chunk {number} does not authenticate") from None
            if not following:
                return
            chunk, number = following, number + 1
