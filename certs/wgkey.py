"""The agent's WireGuard public key, bound into its client certificate.

The gateway installs a WireGuard peer only for the key named in the certificate the agent logged in with, so a
stolen WireGuard key alone does not open a tunnel, and revoking the certificate ends both. The key travels in a
private, non-critical extension:

    extnID    2.25.284944863838092345852714023541851930214
    extnValue OCTET STRING containing the DER of  WireGuardPublicKey ::= OCTET STRING (SIZE (32))

The OID is a UUID-derived OID (ITU-T X.667 / RFC 4122 §2.25 arc): the UUID
d65e6273-9b38-4a83-8e7b-9645ffc9be66 was generated once for this project and its integer value is the arc. No
registration is needed and no other party will use it. Non-critical, so TLS stacks that do not know it ignore it.
"""

from __future__ import annotations

import base64
import binascii

from cryptography import x509

from certs.errors import InvalidWireGuardKey

WIREGUARD_KEY_OID = x509.ObjectIdentifier("2.25.284944863838092345852714023541851930214")
_KEY_LENGTH = 32
_DER_OCTET_STRING_32 = bytes([0x04, _KEY_LENGTH])


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


def wireguard_key_extension(public_key: str) -> x509.UnrecognizedExtension:
    """The extension value to add (non-critical) to an agent certificate."""
    return x509.UnrecognizedExtension(WIREGUARD_KEY_OID, _DER_OCTET_STRING_32 + wireguard_key_bytes(public_key))


def wireguard_key_of(cert: x509.Certificate) -> str | None:
    """The WireGuard public key bound in `cert`, in WireGuard's base64 form, or None if it carries none.

    A present but malformed extension raises, because a certificate that claims a key we cannot read must not be
    treated like one that claims none.
    """
    try:
        ext = cert.extensions.get_extension_for_oid(WIREGUARD_KEY_OID)
    except x509.ExtensionNotFound:
        return None
    value = ext.value
    raw = value.value if isinstance(value, x509.UnrecognizedExtension) else b""
    if len(raw) != _KEY_LENGTH + 2 or not raw.startswith(_DER_OCTET_STRING_32):
        raise InvalidWireGuardKey(
            f"certificate serial {cert.serial_number:x} carries a malformed WireGuard key extension; reissue it"
        )
    return base64.b64encode(raw[2:]).decode("ascii")
