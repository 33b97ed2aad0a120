"""Certificate revocation lists, built from the revocations the gateway keeps in its database.

The library keeps no state: the caller passes every revoked entry still within its certificate's lifetime and
the next CRL number (RFC 5280 §5.2.3: monotonically increasing; the gateway takes it from a database sequence
under the job lock, so two nodes never publish the same number with different content).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from certs.authority import Authority
from certs.errors import CertificateError

RevocationReason = x509.ReasonFlags


@dataclass(frozen=True)
class RevokedEntry:
    """One revoked certificate: its serial, when it was revoked, and why."""

    serial: int
    revoked_at: datetime
    reason: RevocationReason = RevocationReason.unspecified


def build_crl(
    authority: Authority,
    revoked: list[RevokedEntry],
    crl_number: int,
    now: datetime,
    next_update: datetime,
) -> x509.CertificateRevocationList:
    """A CRL signed by the issuing CA, valid from `now` until `next_update`."""
    if next_update <= now:
        raise CertificateError(f"next_update {next_update:%Y-%m-%d %H:%M} is not after now; give a later time")
    if crl_number < 0:
        raise CertificateError(f"CRL number {crl_number} is negative; pass the next value of the CRL sequence")
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(authority.issuing_cert.subject)
        .last_update(now)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(crl_number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.issuing_key.public_key()), critical=False
        )
    )
    for entry in revoked:
        revoked_cert = x509.RevokedCertificateBuilder().serial_number(entry.serial).revocation_date(entry.revoked_at)
        # RFC 5280 §5.3.1: the reasonCode "unspecified" SHOULD be absent rather than present.
        if entry.reason is not RevocationReason.unspecified:
            revoked_cert = revoked_cert.add_extension(x509.CRLReason(entry.reason), critical=False)
        builder = builder.add_revoked_certificate(revoked_cert.build())
    return builder.sign(authority.issuing_key, hashes.SHA256())
