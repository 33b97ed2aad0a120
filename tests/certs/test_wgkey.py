"""The WireGuard key binding: its exact SAN URI, round trip, and damaged or doubled claims refused."""

from __future__ import annotations

import base64
from datetime import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from certs import Authority, InvalidWireGuardKey, issue_agent_with_generated_key, renew_certificate, wireguard_key_of
from certs.identity import upn_other_name

KNOWN_KEY = base64.b64encode(bytes(range(32))).decode("ascii")
KNOWN_URI = "https://sohogw.invalid/wireguard/AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
# 0xC8..0xE7 encodes with '+' and '/' in standard base64, so it exercises the base64url translation.
SLASHY_KEY = base64.b64encode(bytes(range(200, 232))).decode("ascii")


def with_names(authority: Authority, model: x509.Certificate, *names: x509.GeneralName) -> x509.Certificate:
    """`model` re-signed by our issuing CA with exactly `names` as its SAN: what a buggy or hostile issuer makes."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(model.subject)
        .issuer_name(model.issuer)
        .public_key(model.public_key())
        .serial_number(model.serial_number)
        .not_valid_before(model.not_valid_before_utc)
        .not_valid_after(model.not_valid_after_utc)
        .add_extension(x509.SubjectAlternativeName([upn_other_name("a@corp.example"), *names]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    )
    return builder.sign(authority.issuing_key, hashes.SHA256())


def test_key_is_one_san_uri_of_base64url_without_padding(authority: Authority, now: datetime) -> None:
    cert = issue_agent_with_generated_key(authority, "a@corp.example", KNOWN_KEY, now).cert
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [KNOWN_URI]
    assert wireguard_key_of(cert) == KNOWN_KEY


@pytest.mark.parametrize("key", [SLASHY_KEY, KNOWN_KEY])
def test_key_round_trips_in_wireguard_base64_form(authority: Authority, now: datetime, key: str) -> None:
    cert = issue_agent_with_generated_key(authority, "a@corp.example", key, now).cert
    assert wireguard_key_of(cert) == key
    assert wireguard_key_of(renew_certificate(authority, cert, now)) == key


def test_certificate_without_a_key_uri_has_no_key(authority: Authority, now: datetime) -> None:
    model = issue_agent_with_generated_key(authority, "a@corp.example", KNOWN_KEY, now).cert
    others = [
        x509.UniformResourceIdentifier("https://other.invalid/wireguard/AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"),
        x509.UniformResourceIdentifier("wireguard:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"),
    ]
    assert wireguard_key_of(with_names(authority, model, *others)) is None


@pytest.mark.parametrize(
    "uri",
    [
        KNOWN_URI[:-1],  # 31.5 bytes
        KNOWN_URI + "=",  # padding is not our form
        KNOWN_URI[:-1] + "g=",
        KNOWN_URI[:-1] + "9",  # non-zero unused bits: a second spelling of a key
        KNOWN_URI.replace("AAEC", "AA+C"),  # standard, not url-safe, alphabet
        KNOWN_URI + "/",
        KNOWN_URI.replace("https://sohogw.invalid", "HTTPS://SOHOGW.INVALID"),
        "https://sohogw.invalid/wireguard/",
    ],
)
def test_malformed_key_uri_is_refused_rather_than_read_as_no_key(authority: Authority, now: datetime, uri: str) -> None:
    model = issue_agent_with_generated_key(authority, "a@corp.example", KNOWN_KEY, now).cert
    damaged = with_names(authority, model, x509.UniformResourceIdentifier(uri))
    with pytest.raises(InvalidWireGuardKey, match="malformed"):
        wireguard_key_of(damaged)
    with pytest.raises(InvalidWireGuardKey):
        renew_certificate(authority, damaged, now)


@pytest.mark.parametrize("second", [KNOWN_URI, KNOWN_URI.replace("AAEC", "AAED")], ids=["same", "different"])
def test_certificate_with_two_key_uris_is_refused(authority: Authority, now: datetime, second: str) -> None:
    model = issue_agent_with_generated_key(authority, "a@corp.example", KNOWN_KEY, now).cert
    doubled = with_names(
        authority, model, x509.UniformResourceIdentifier(KNOWN_URI), x509.UniformResourceIdentifier(second)
    )
    with pytest.raises(InvalidWireGuardKey, match="2 WireGuard key URIs"):
        wireguard_key_of(doubled)
    with pytest.raises(InvalidWireGuardKey, match="2 WireGuard key URIs"):
        renew_certificate(authority, doubled, now)
