"""Certificate profiles: which extensions each kind of certificate carries, and why.

Kept apart from the signing code so the profile of an agent, a server or a CA can be read in one place. Every
profile follows RFC 5280 and passes pkilint's PKIX checks (the test suite lints each one).
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

Extension = tuple[x509.ExtensionType, bool]  # (value, critical)


@dataclass(frozen=True)
class PublicationUrls:
    """Where relying parties find revocation data for certificates we issue (full http:// URLs).

    Both are optional: a certificate without them is still checked by the gateway from its own database, but
    outside relying parties (a VPN concentrator, openssl) then have no way to learn of a revocation.
    """

    ocsp_url: str | None = None
    crl_url: str | None = None


def _key_usage(*, digital_signature: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _key_identifiers(subject_key: CertificatePublicKeyTypes, issuer_key: CertificatePublicKeyTypes) -> list[Extension]:
    return [
        (x509.SubjectKeyIdentifier.from_public_key(subject_key), False),
        (x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key), False),  # type: ignore[arg-type]
    ]


def ca_extensions(
    subject_key: CertificatePublicKeyTypes, issuer_key: CertificatePublicKeyTypes, path_length: int
) -> list[Extension]:
    """A CA: basicConstraints and keyUsage critical (RFC 5280 §4.2.1.9, §4.2.1.3)."""
    return [
        (x509.BasicConstraints(ca=True, path_length=path_length), True),
        (_key_usage(cert_sign=True), True),
        *_key_identifiers(subject_key, issuer_key),
    ]


def _revocation_pointers(urls: PublicationUrls | None) -> list[Extension]:
    """AIA (OCSP) and CRL distribution point, only for the URLs given."""
    found: list[Extension] = []
    if urls and urls.ocsp_url:
        access = x509.AccessDescription(
            AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(urls.ocsp_url)
        )
        found.append((x509.AuthorityInformationAccess([access]), False))
    if urls and urls.crl_url:
        point = x509.DistributionPoint([x509.UniformResourceIdentifier(urls.crl_url)], None, None, None)
        found.append((x509.CRLDistributionPoints([point]), False))
    return found


def end_entity_extensions(
    subject_key: CertificatePublicKeyTypes,
    issuer_key: CertificatePublicKeyTypes,
    usage: x509.ObjectIdentifier,
    names: list[x509.GeneralName],
    urls: PublicationUrls | None,
) -> list[Extension]:
    """An end entity: one EKU (clientAuth or serverAuth), digitalSignature only, the SAN, revocation pointers.

    digitalSignature alone suits both EC keys and RSA keys under TLS 1.3 / ECDHE, where the key only signs.
    """
    return [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (_key_usage(digital_signature=True), True),
        (x509.ExtendedKeyUsage([usage]), False),
        (x509.SubjectAlternativeName(names), False),
        *_key_identifiers(subject_key, issuer_key),
        *_revocation_pointers(urls),
    ]


CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH
SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
