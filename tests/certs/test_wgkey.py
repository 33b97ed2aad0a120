"""The WireGuard key extension: exact encoding, round trip, and a damaged extension refused."""

from __future__ import annotations

import base64
from datetime import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from certs import Authority, InvalidWireGuardKey, issue_agent_with_generated_key, wireguard_key_of
from certs.wgkey import WIREGUARD_KEY_OID

KNOWN_KEY = base64.b64encode(bytes(range(32))).decode("ascii")


def test_extension_value_is_a_der_octet_string_of_the_32_raw_key_bytes(authority: Authority, now: datetime) -> None:
    cert = issue_agent_with_generated_key(authority, "a@corp.example", KNOWN_KEY, now).cert
    extension = cert.extensions.get_extension_for_oid(WIREGUARD_KEY_OID)
    assert isinstance(extension.value, x509.UnrecognizedExtension)
    assert extension.value.value == b"\x04\x20" + bytes(range(32))
    assert wireguard_key_of(cert) == KNOWN_KEY


def test_damaged_wireguard_extension_is_refused_rather_than_ignored(authority: Authority, now: datetime) -> None:
    cert = issue_agent_with_generated_key(authority, "a@corp.example", KNOWN_KEY, now).cert
    builder = (
        x509.CertificateBuilder()
        .subject_name(cert.subject)
        .issuer_name(cert.issuer)
        .public_key(cert.public_key())
        .serial_number(cert.serial_number)
        .not_valid_before(cert.not_valid_before_utc)
        .not_valid_after(cert.not_valid_after_utc)
        .add_extension(x509.UnrecognizedExtension(WIREGUARD_KEY_OID, b"\x04\x10" + bytes(16)), critical=False)
    )
    damaged = builder.sign(authority.issuing_key, hashes.SHA256())
    with pytest.raises(InvalidWireGuardKey, match="malformed"):
        wireguard_key_of(damaged)
