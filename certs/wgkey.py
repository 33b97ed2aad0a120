"""The agent's WireGuard public key, bound into its client certificate.

The gateway installs a WireGuard peer only for the key named in the certificate the agent logged in with, so a
stolen WireGuard key alone does not open a tunnel, and revoking the certificate ends both. The key travels as one
URI in the subjectAltName:

    uniformResourceIdentifier  https://sohogw.invalid/wireguard/<the 32 key bytes in base64url, no padding>

Why this form (docs/pki.md has the whole argument): a SAN URI needs no OID, so every X.509 parser reads it (the
earlier 2.25 UUID OID has a 128-bit arc that Go's crypto/x509 and pkilint refuse); pkilint's URI check accepts
only http(s)-like URLs with a host; and `.invalid` (RFC 6761 §6.4) is the registration-free host that can never
resolve, so the URI is plainly a name, not a location. Reading accepts only this exact form.
"""

from __future__ import annotations

import base64
import binascii
import re

from cryptography import x509

from certs.errors import InvalidWireGuardKey

WIREGUARD_KEY_URI_PREFIX = "https://sohogw.invalid/wireguard/"
_KEY_LENGTH = 32
# 32 bytes are 43 base64url characters; the last one carries 2 unused bits, which must be zero (RFC 4648 §3.5
# canonical encoding), so each key has exactly one spelling.
_URI_KEY = re.compile(r"[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]")


def wireguard_key_bytes(public_key: str) -> bytes:
    """Decode a WireGuard public key in its usual form (44 characters of padded standard base64)."""
    try:
        raw = base64.b64decode(public_key.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidWireGuardKey(
            f"WireGuard public key {public_key!r} is not base64; copy it from `wg pubkey` output"
        ) from exc
    if len(raw) != _KEY_LENGTH:
        raise InvalidWireGuardKey(
            f"WireGuard public key decodes to {len(raw)} bytes, expected {_KEY_LENGTH}; copy it from `wg pubkey`"
        )
    return raw


def wireguard_key_name(public_key: str) -> x509.UniformResourceIdentifier:
    """The subjectAltName entry that binds `public_key` to an agent certificate."""
    encoded = base64.urlsafe_b64encode(wireguard_key_bytes(public_key)).decode("ascii").rstrip("=")
    return x509.UniformResourceIdentifier(WIREGUARD_KEY_URI_PREFIX + encoded)


def _claims_a_key(name: x509.GeneralName) -> bool:
    """A SAN URI that looks meant as our key binding, even if damaged or differently cased."""
    return isinstance(name, x509.UniformResourceIdentifier) and name.value.casefold().startswith(
        WIREGUARD_KEY_URI_PREFIX.casefold()
    )


def wireguard_key_of(cert: x509.Certificate) -> str | None:
    """The WireGuard public key bound in `cert`, in WireGuard's base64 form, or None if it claims none.

    Fails closed: a claim we cannot read exactly, or more than one claim, raises rather than reading as "no key"
    or picking one, so a certificate never stands for two tunnels. Other URIs (a company CA's own) are ignored.
    """
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    claims = [name.value for name in names if _claims_a_key(name)]
    if not claims:
        return None
    if len(claims) > 1:
        raise InvalidWireGuardKey(
            f"certificate serial {cert.serial_number:x} carries {len(claims)} WireGuard key URIs; a certificate "
            "binds one key, reissue it"
        )
    encoded = claims[0].removeprefix(WIREGUARD_KEY_URI_PREFIX)
    if not claims[0].startswith(WIREGUARD_KEY_URI_PREFIX) or not _URI_KEY.fullmatch(encoded):
        raise InvalidWireGuardKey(
            f"certificate serial {cert.serial_number:x} carries a malformed WireGuard key URI {claims[0]!r}; reissue it"
        )
    return base64.b64encode(base64.urlsafe_b64decode(encoded + "=")).decode("ascii")
