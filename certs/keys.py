"""Private keys and certificate files on disk.

Keys are PKCS#8 PEM encrypted with the passphrase (`BestAvailableEncryption`: PBES2, AES-256-CBC, a scrypt or
PBKDF2 key derivation chosen by the cryptography library) and written with mode 0600 from the start, never
chmod-ed after the fact. Loading refuses a key file that group or other can read or write, as ssh does, because a
key that leaked is no longer a secret however good its passphrase is.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from certs.errors import AuthorityMissing, KeyFilePermissionsTooOpen, PassphraseRequired, WrongPassphrase

KEY_FILE_MODE = 0o600
CERT_FILE_MODE = 0o644


def generate_key() -> ec.EllipticCurvePrivateKey:
    """A new EC P-256 key, the one curve every browser and TLS stack accepts for client certificates."""
    return ec.generate_private_key(ec.SECP256R1())


def passphrase_bytes(passphrase: str | bytes) -> bytes:
    """The passphrase as bytes, refusing an empty one."""
    raw = passphrase.encode("utf-8") if isinstance(passphrase, str) else passphrase
    if not raw:
        raise PassphraseRequired("an empty passphrase was given; choose a passphrase to encrypt the private key")
    return raw


def _write_new_file(path: Path, data: bytes, mode: int) -> None:
    """Create `path` with `mode` already set (O_EXCL: an existing file is never overwritten)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)  # the umask may have removed bits from `mode`


def write_private_key(path: Path, key: PrivateKeyTypes, passphrase: str | bytes) -> None:
    """Write `key` encrypted with `passphrase` to a new file of mode 0600."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase_bytes(passphrase)),
    )
    _write_new_file(path, pem, KEY_FILE_MODE)


def load_private_key(path: Path, passphrase: str | bytes) -> PrivateKeyTypes:
    """Load an encrypted key, refusing loose permissions before even reading it."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        raise AuthorityMissing(f"private key file {path} does not exist; run the CA initialisation first") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFilePermissionsTooOpen(
            f"private key file {path} has mode {stat.S_IMODE(mode):04o}; group/other must have no access. "
            f"Run: chmod 600 {path}"
        )
    try:
        return serialization.load_pem_private_key(path.read_bytes(), passphrase_bytes(passphrase))
    except (ValueError, TypeError) as exc:
        raise WrongPassphrase(
            f"cannot decrypt private key file {path}: the passphrase is wrong (or the file is damaged)"
        ) from exc


def write_certificates(path: Path, certs: list[x509.Certificate]) -> None:
    """Write one or more certificates as PEM to a new, world-readable file."""
    pem = b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certs)
    _write_new_file(path, pem, CERT_FILE_MODE)


def load_certificate(path: Path) -> x509.Certificate:
    """Load the single certificate of a PEM file."""
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError as exc:
        raise AuthorityMissing(f"certificate file {path} does not exist; run the CA initialisation first") from exc
