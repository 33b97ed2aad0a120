"""An encrypted, authenticated file of any size: a backup archive is written and read through it.

The stream is cut into 1 MiB chunks, each sealed with AES-256-GCM (the key from the operator's passphrase by
scrypt). The header is the associated data of every chunk and each nonce carries the chunk's number and a
"last chunk" flag, so a changed, removed, reordered or appended chunk, a cut-off tail and a changed header are all
refused; so is one altered byte anywhere. Nothing of a refused file is handed on: the reader checks a chunk before
it writes its plaintext, and the restore writes only into a fresh place it removes on failure.
"""

import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from gateway.deployment.errors import ArchiveRefused
from gateway.errors import GatewayError

MAGIC = b"SOHOGW-BACKUP\x00\x01"
CHUNK = 1 << 20
TAG = 16
SALT = 16
NONCE_PREFIX = 7
HEADER = struct.Struct(f">{len(MAGIC)}s{SALT}s{NONCE_PREFIX}sI")
SCRYPT_N = 1 << 15
MIN_PASSPHRASE = 16


def read_passphrase_file(path: Path) -> bytes:
    """The backup passphrase, from a file only the operator can read (never from argv, where `ps` shows it)."""
    if path.stat().st_mode & 0o077:
        raise GatewayError(f"{path} is readable by others; chmod 600 it")
    secret = path.read_bytes().strip()
    if len(secret) < MIN_PASSPHRASE:
        raise GatewayError(f"the backup passphrase in {path} is shorter than {MIN_PASSPHRASE} characters")
    return secret


def _key(passphrase: bytes, salt: bytes) -> AESGCM:
    return AESGCM(Scrypt(salt=salt, length=32, n=SCRYPT_N, r=8, p=1).derive(passphrase))


def _nonce(prefix: bytes, number: int, last: bool) -> bytes:
    return prefix + struct.pack(">I", number) + (b"\x01" if last else b"\x00")


def seal(source: BinaryIO, target: BinaryIO, passphrase: bytes) -> None:
    """Encrypt ``source`` to ``target``; the last chunk (possibly empty) is flagged as last."""
    salt, prefix = os.urandom(SALT), os.urandom(NONCE_PREFIX)
    header = HEADER.pack(MAGIC, salt, prefix, CHUNK)
    aead = _key(passphrase, salt)
    target.write(header)
    number, chunk = 0, source.read(CHUNK)
    while True:
        following = source.read(CHUNK)
        last = not following
        target.write(aead.encrypt(_nonce(prefix, number, last), chunk, header))
        if last:
            return
        number, chunk = number + 1, following


def _chunks(source: BinaryIO, size: int) -> Iterator[tuple[bytes, bool]]:
    chunk = source.read(size)
    while True:
        following = source.read(size)
        yield chunk, not following
        if not following:
            return
        chunk = following


def unseal(source: BinaryIO, target: BinaryIO, passphrase: bytes) -> None:
    """Decrypt ``source`` into ``target``, or raise ``ArchiveRefused`` at the first chunk that does not verify."""
    header = source.read(HEADER.size)
    if len(header) != HEADER.size or not header.startswith(MAGIC):
        raise ArchiveRefused("this is not a SOHO Gateway backup archive (or its header was altered)")
    _, salt, prefix, size = HEADER.unpack(header)
    if size != CHUNK:
        raise ArchiveRefused("the archive's header was altered (chunk size)")
    aead = _key(passphrase, salt)
    for number, (sealed, last) in enumerate(_chunks(source, CHUNK + TAG)):
        try:
            target.write(aead.decrypt(_nonce(prefix, number, last), sealed, header))
        except InvalidTag:
            raise ArchiveRefused(
                f"chunk {number} of the archive does not verify: the passphrase is wrong, or the archive was "
                "altered, cut short or extended; nothing was restored"
            ) from None
