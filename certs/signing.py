"""The one place end-entity certificates are signed, after checking the issuing CA may sign them.

A certificate that outlives its issuer would fail validation half-way through its life in a way nobody expects,
so we refuse to issue it rather than shortening it silently; the administrator renews the issuing CA instead.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from certs.authority import CLOCK_SKEW, Authority
from certs.errors import AuthorityExpired, InvalidIdentity
from certs.profiles import Extension


def check_authority_can_sign(authority: Authority, now: datetime, until: datetime) -> None:
    """Refuse when the issuing CA is not valid at `now` or would expire before `until`."""
    ca = authority.issuing_cert
    name = ca.subject.rfc4514_string()
    if now < ca.not_valid_before_utc:
        raise AuthorityExpired(
            f"issuing CA {name} is not valid before {ca.not_valid_before_utc:%Y-%m-%d %H:%M} UTC; check the clock"
        )
    if now >= ca.not_valid_after_utc:
        raise AuthorityExpired(
            f"issuing CA {name} expired on {ca.not_valid_after_utc:%Y-%m-%d}; create a new issuing CA"
        )
    if until > ca.not_valid_after_utc:
        raise AuthorityExpired(
            f"the certificate would be valid until {until:%Y-%m-%d} but issuing CA {name} expires on "
            f"{ca.not_valid_after_utc:%Y-%m-%d}; ask for a shorter lifetime or renew the issuing CA"
        )


def sign_end_entity(
    authority: Authority,
    subject: x509.Name,
    public_key: CertificatePublicKeyTypes,
    extensions: list[Extension],
    now: datetime,
    lifetime: timedelta,
) -> x509.Certificate:
    """Sign a certificate valid from `now` (less the clock skew allowance) for `lifetime`."""
    if lifetime <= timedelta(0):
        raise InvalidIdentity(f"lifetime {lifetime} is not positive; give a lifetime of at least a minute")
    not_after = now + lifetime
    check_authority_can_sign(authority, now, not_after)
    not_before = max(now - CLOCK_SKEW, authority.issuing_cert.not_valid_before_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(authority.issuing_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    for value, critical in extensions:
        builder = builder.add_extension(value, critical)
    return builder.sign(authority.issuing_key, hashes.SHA256())
