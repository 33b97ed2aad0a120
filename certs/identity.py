"""Who a client certificate names: the UPN as AD CS writes it, e-mail, CN, and the bound WireGuard key.

AD CS puts the user principal name in the SAN as otherName 1.3.6.1.4.1.311.20.2.3 (szOID_NT_PRINCIPAL_NAME)
holding a UTF8String; Windows smart-card logon reads it from there. We write and read it the same way so our
certificates and the company CA's look alike to the gateway.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from certs.errors import InvalidIdentity
from certs.wgkey import wireguard_key_of

UPN_OID = x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")
_UTF8_STRING_TAG = 0x0C


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def upn_other_name(upn: str) -> x509.OtherName:
    """The SAN entry for `upn`: otherName with a DER UTF8String value."""
    if "@" not in upn or upn.startswith("@") or upn.endswith("@") or any(ch.isspace() for ch in upn):
        raise InvalidIdentity(f"{upn!r} is not a user principal name; expected the form user@example.com")
    raw = upn.encode("utf-8")
    return x509.OtherName(UPN_OID, bytes([_UTF8_STRING_TAG]) + _der_length(len(raw)) + raw)


def _decode_utf8_string(der: bytes) -> str | None:
    """Decode a DER UTF8String; None for anything else (a UPN in another form is not trusted)."""
    if len(der) < 2 or der[0] != _UTF8_STRING_TAG:
        return None
    first = der[1]
    if first < 0x80:
        start, length = 2, first
    else:
        count = first & 0x7F
        start, length = 2 + count, int.from_bytes(der[2 : 2 + count], "big")
    body = der[start:]
    if len(body) != length:
        return None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _san_names(cert: x509.Certificate) -> list[x509.GeneralName]:
    try:
        return list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return []


def upn_of(cert: x509.Certificate) -> str | None:
    """The UPN in the certificate's SAN otherName, or None."""
    for name in _san_names(cert):
        if isinstance(name, x509.OtherName) and name.type_id == UPN_OID:
            return _decode_utf8_string(name.value)
    return None


@dataclass(frozen=True)
class CertificateIdentity:
    """What the gateway records about the certificate a person logged in with."""

    upn: str | None
    email: str | None
    common_name: str | None
    serial: int
    issuer: str
    fingerprint_sha256: str
    wireguard_public_key: str | None
    not_before: datetime
    not_after: datetime
    subject: str = ""
    """The subject as an RFC 4514 string: AD CS writes a user's full directory DN there."""


def identity_of(cert: x509.Certificate) -> CertificateIdentity:
    """Extract the identity fields of a (verified) client certificate."""
    emails = [n.value for n in _san_names(cert) if isinstance(n, x509.RFC822Name)]
    common_names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return CertificateIdentity(
        upn=upn_of(cert),
        email=emails[0] if emails else None,
        common_name=str(common_names[0].value) if common_names else None,
        serial=cert.serial_number,
        issuer=cert.issuer.rfc4514_string(),
        fingerprint_sha256=hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest(),
        wireguard_public_key=wireguard_key_of(cert),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        subject=cert.subject.rfc4514_string(),
    )
