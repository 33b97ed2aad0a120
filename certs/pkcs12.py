"""PKCS#12 export of a generated key and its certificate, for import into a browser or the OS store."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import PrivateFormat, pkcs12
from cryptography.x509.oid import NameOID

from certs.keys import passphrase_bytes

# PBES2 with AES-256-CBC and PBKDF2-HMAC-SHA256, and a SHA-256 MAC: what openssl 3 writes by default and what
# current browsers, Windows 10 1709+ and macOS import. The legacy RC2/3DES form is refused by openssl 3.
_KDF_ROUNDS = 100_000


def export_pkcs12(
    cert: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    chain: list[x509.Certificate],
    passphrase: str | bytes,
) -> bytes:
    """A PKCS#12 (.p12) file holding key, certificate and CA chain, encrypted with a non-empty passphrase."""
    secret = passphrase_bytes(passphrase)
    encryption = (
        PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(_KDF_ROUNDS)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(secret)
    )
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    friendly = str(names[0].value).encode("utf-8") if names else None
    return pkcs12.serialize_key_and_certificates(friendly, key, cert, chain, encryption)
