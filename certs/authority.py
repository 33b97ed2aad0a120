"""The two-tier CA: an offline-able root and the issuing CA that signs agents, servers, CRLs and OCSP answers.

File layout in the CA directory (mode 0700):

    root-ca.key.pem      0600  encrypted PKCS#8; needed only to make a new issuing CA — may be moved offline
    root-ca.cert.pem     0644
    issuing-ca.key.pem   0600  encrypted PKCS#8; loaded by the gateway at start with the passphrase
    issuing-ca.cert.pem  0644
    chain.pem            0644  issuing CA then root, what clients and openssl need
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import NameOID

from certs.errors import AuthorityExists, AuthorityMissing, InvalidIdentity, UnsupportedKeyType
from certs.keys import (
    generate_key,
    load_certificate,
    load_private_key,
    passphrase_bytes,
    write_certificates,
    write_private_key,
)
from certs.profiles import ca_extensions

ROOT_KEY = "root-ca.key.pem"
ROOT_CERT = "root-ca.cert.pem"
ISSUING_KEY = "issuing-ca.key.pem"
ISSUING_CERT = "issuing-ca.cert.pem"
CHAIN = "chain.pem"
CA_FILES = (ROOT_KEY, ROOT_CERT, ISSUING_KEY, ISSUING_CERT, CHAIN)

# Certificates start a few minutes in the past so a client whose clock runs slightly behind accepts them.
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class Authority:
    """The issuing CA's certificate and key, and the root above it."""

    issuing_cert: x509.Certificate
    issuing_key: ec.EllipticCurvePrivateKey
    root_cert: x509.Certificate

    @property
    def chain(self) -> list[x509.Certificate]:
        """Issuing CA then root: the order TLS servers and PKCS#12 files present them."""
        return [self.issuing_cert, self.root_cert]

    @property
    def org_name(self) -> str:
        """The organisation name our certificates carry in their subject."""
        values = self.issuing_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        return str(values[0].value) if values else ""


def _ca_cert(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: CertificateIssuerPrivateKeyTypes,
    path_length: int,
    not_before: datetime,
    not_after: datetime,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    for value, critical in ca_extensions(key.public_key(), issuer_key.public_key(), path_length):
        builder = builder.add_extension(value, critical)
    return builder.sign(issuer_key, hashes.SHA256())


def _name(org_name: str, common_name: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org_name), x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    )


def init_authority(
    directory: Path,
    passphrase: str | bytes,
    org_name: str,
    now: datetime,
    root_lifetime_days: int = 20 * 365,
    issuing_lifetime_days: int = 10 * 365,
) -> Authority:
    """Create a new root and issuing CA (EC P-256) in `directory`; refuse if any CA file is already there."""
    passphrase_bytes(passphrase)
    if not org_name.strip():
        raise InvalidIdentity("the organisation name of the CA is empty; give the company's name")
    if issuing_lifetime_days > root_lifetime_days:
        raise InvalidIdentity("the issuing CA cannot outlive the root; shorten issuing_lifetime_days")
    directory = Path(directory)
    present = [name for name in CA_FILES if (directory / name).exists()]
    if present:
        raise AuthorityExists(
            f"CA files already exist in {directory} ({', '.join(present)}); refusing to overwrite them. "
            "Move them away first if you really mean to start a new CA."
        )
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    start = now - CLOCK_SKEW
    root_key, issuing_key = generate_key(), generate_key()
    root_name = _name(org_name, f"{org_name} Root CA")
    root = _ca_cert(root_name, root_key, root_name, root_key, 1, start, now + timedelta(days=root_lifetime_days))
    issuing = _ca_cert(
        _name(org_name, f"{org_name} Issuing CA"),
        issuing_key,
        root_name,
        root_key,
        0,
        start,
        now + timedelta(days=issuing_lifetime_days),
    )
    write_private_key(directory / ROOT_KEY, root_key, passphrase)
    write_private_key(directory / ISSUING_KEY, issuing_key, passphrase)
    write_certificates(directory / ROOT_CERT, [root])
    write_certificates(directory / ISSUING_CERT, [issuing])
    write_certificates(directory / CHAIN, [issuing, root])
    os.chmod(directory, 0o700)
    return Authority(issuing_cert=issuing, issuing_key=issuing_key, root_cert=root)


def load_authority(directory: Path, passphrase: str | bytes) -> Authority:
    """Load the issuing CA (never the root key) from `directory`, checking key permissions and passphrase."""
    directory = Path(directory)
    key = load_private_key(directory / ISSUING_KEY, passphrase)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise UnsupportedKeyType(f"{directory / ISSUING_KEY} is not an EC key; it was not made by init_authority")
    issuing_cert = load_certificate(directory / ISSUING_CERT)
    if issuing_cert.public_key() != key.public_key():
        raise AuthorityMissing(
            f"{directory / ISSUING_KEY} does not belong to {directory / ISSUING_CERT}; restore the matching pair"
        )
    return Authority(issuing_cert=issuing_cert, issuing_key=key, root_cert=load_certificate(directory / ROOT_CERT))
