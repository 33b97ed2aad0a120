"""Issuing and renewing agent client certificates.

Two ways to get one: the agent sends a CSR (its key never leaves its machine: preferred), or the gateway makes
the key and hands cert + key over once as a PKCS#12 file (for browsers that cannot make a CSR). Either way the
subject, the UPN, the e-mail and the WireGuard key come from the gateway's records.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import NameOID

from certs.authority import Authority
from certs.csr import check_public_key, public_key_from_csr
from certs.errors import InvalidIdentity, UntrustedCertificate
from certs.identity import upn_other_name
from certs.keys import generate_key
from certs.profiles import CLIENT_AUTH, PublicationUrls, end_entity_extensions
from certs.signing import sign_end_entity
from certs.wgkey import wireguard_key_name, wireguard_key_of

AGENT_LIFETIME = timedelta(days=7)


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate and the private key the gateway generated for it (hand over once, then forget)."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _agent_names(upn: str, email: str | None, wireguard_public_key: str) -> list[x509.GeneralName]:
    """The agent's SAN: UPN, e-mail when given, and its one WireGuard key (see certs/wgkey.py)."""
    names: list[x509.GeneralName] = [upn_other_name(upn)]
    if email is not None:
        if not email.isascii() or "@" not in email or any(ch.isspace() for ch in email):
            raise InvalidIdentity(f"{email!r} is not an e-mail address a certificate can carry (ASCII user@domain)")
        names.append(x509.RFC822Name(email))
    names.append(wireguard_key_name(wireguard_public_key))
    return names


def _issue_agent(
    authority: Authority,
    public_key: CertificatePublicKeyTypes,
    upn: str,
    wireguard_public_key: str,
    now: datetime,
    email: str | None,
    account: str | None,
    lifetime: timedelta,
    urls: PublicationUrls | None,
) -> x509.Certificate:
    common_name = account or upn
    if not common_name.strip():
        raise InvalidIdentity("the account name is empty; pass the directory account the certificate is for")
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, authority.org_name),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    names = _agent_names(upn, email, wireguard_public_key)
    extensions = end_entity_extensions(public_key, authority.issuing_key.public_key(), CLIENT_AUTH, names, urls)
    return sign_end_entity(authority, subject, public_key, extensions, now, lifetime)


def sign_agent_csr(
    authority: Authority,
    csr_pem: str | bytes,
    upn: str,
    wireguard_public_key: str,
    now: datetime,
    email: str | None = None,
    account: str | None = None,
    lifetime: timedelta = AGENT_LIFETIME,
    urls: PublicationUrls | None = None,
) -> x509.Certificate:
    """Sign an agent's CSR: only its public key is used, everything else comes from the arguments."""
    key = public_key_from_csr(csr_pem)
    return _issue_agent(authority, key, upn, wireguard_public_key, now, email, account, lifetime, urls)


def issue_agent_with_generated_key(
    authority: Authority,
    upn: str,
    wireguard_public_key: str,
    now: datetime,
    email: str | None = None,
    account: str | None = None,
    lifetime: timedelta = AGENT_LIFETIME,
    urls: PublicationUrls | None = None,
) -> IssuedCertificate:
    """Make a P-256 key and an agent certificate for it; pair with `export_pkcs12` to hand them over."""
    key = generate_key()
    cert = _issue_agent(authority, key.public_key(), upn, wireguard_public_key, now, email, account, lifetime, urls)
    return IssuedCertificate(cert=cert, key=key)


def renew_certificate(
    authority: Authority,
    cert: x509.Certificate,
    now: datetime,
    lifetime: timedelta = AGENT_LIFETIME,
    urls: PublicationUrls | None = None,
) -> x509.Certificate:
    """A new certificate (new serial, new validity) for the same key, subject, SAN, EKU and WireGuard key.

    Only certificates this authority issued are renewed: a renewal must not launder a foreign certificate. The
    WireGuard key is a SAN entry, so copying the SAN keeps it; a damaged or doubled key claim is refused first.
    """
    try:
        cert.verify_directly_issued_by(authority.issuing_cert)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise UntrustedCertificate(
            f"certificate serial {cert.serial_number:x} was not issued by "
            f"{authority.issuing_cert.subject.rfc4514_string()}; only our own certificates can be renewed"
        ) from exc
    key = check_public_key(cert.public_key())
    wireguard_key_of(cert)  # raises InvalidWireGuardKey rather than re-sign a claim we cannot read
    names = list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    usage = next(iter(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value))
    extensions = end_entity_extensions(key, authority.issuing_key.public_key(), usage, names, urls)
    return sign_end_entity(authority, cert.subject, key, extensions, now, lifetime)
