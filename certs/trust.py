"""Which certificates the gateway trusts for login: our own chain plus imported company CA chains (e.g. AD CS).

Path building and RFC 5280 checks are done by cryptography's `x509.verification` (the webpki-based verifier of
pyca), not by hand: a hand-rolled path builder is where certificate bugs live. On top of it we require the
clientAuth EKU explicitly and ask a revocation checker about the leaf.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID

from certs.errors import CertificateOutOfValidity, UntrustedCertificate, WrongCertificatePurpose
from certs.identity import CertificateIdentity, identity_of

PEM_MARKER = b"-----BEGIN CERTIFICATE-----"


class RevocationChecker(Protocol):
    """Says nothing if `cert` is not revoked; raises CertificateRevokedError or RevocationUnknown otherwise."""

    def check(self, cert: x509.Certificate, issuer: x509.Certificate, now: datetime) -> None: ...


def read_certificates(data: bytes) -> list[x509.Certificate]:
    """All certificates of a PEM bundle, or the single certificate of a DER file."""
    try:
        if PEM_MARKER in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise UntrustedCertificate(
            "the file to import holds no readable certificate; export the CA chain as PEM or DER (.cer) and retry"
        ) from exc


def _is_self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


@dataclass(frozen=True)
class TrustStore:
    """Trust anchors (self-signed roots) and the intermediate CAs that lead from them to client certificates."""

    anchors: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...]

    @classmethod
    def build(cls, own_chain: list[x509.Certificate], imported: Iterable[bytes] = ()) -> TrustStore:
        """Our chain plus each imported PEM/DER chain; self-signed certificates become anchors."""
        certs = list(own_chain)
        for data in imported:
            certs.extend(read_certificates(data))
        unique = {cert.fingerprint(hashes.SHA256()): cert for cert in certs}.values()
        anchors = tuple(cert for cert in unique if _is_self_signed(cert))
        if not anchors:
            raise UntrustedCertificate("no root CA (self-signed certificate) among the trusted chains; import the root")
        return cls(anchors=anchors, intermediates=tuple(cert for cert in unique if cert not in anchors))


def _require_client_auth(cert: x509.Certificate) -> None:
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = x509.ExtendedKeyUsage([])
    if ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
        raise WrongCertificatePurpose(
            f"certificate serial {cert.serial_number:x} is not for client authentication (no clientAuth EKU); "
            "issue the user a certificate from a client-authentication template"
        )


def verify_client_certificate(
    cert: x509.Certificate,
    trust_store: TrustStore,
    now: datetime,
    revocation_checker: RevocationChecker,
    presented_chain: Iterable[x509.Certificate] = (),
) -> CertificateIdentity:
    """Verify chain, validity and clientAuth, then revocation of the leaf; return who the certificate names.

    Revocation is checked for the leaf only: the CAs are ones the administrator imported by hand, and are
    removed from the trust store by hand when compromised.
    """
    try:
        cert.extensions  # noqa: B018 - parse every extension now, so a malformed one is a refusal, not a crash
    except ValueError as exc:
        raise UntrustedCertificate(
            f"certificate {cert.subject.rfc4514_string()} has a malformed extension ({exc}); it cannot be used"
        ) from exc
    if now < cert.not_valid_before_utc or now > cert.not_valid_after_utc:
        raise CertificateOutOfValidity(
            f"certificate serial {cert.serial_number:x} is valid from {cert.not_valid_before_utc:%Y-%m-%d %H:%M} "
            f"to {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC, not at {now:%Y-%m-%d %H:%M} UTC"
        )
    _require_client_auth(cert)
    verifier = verification.PolicyBuilder().store(verification.Store(list(trust_store.anchors))).time(now)
    try:
        verified = verifier.build_client_verifier().verify(cert, [*trust_store.intermediates, *presented_chain])
    except verification.VerificationError as exc:
        raise UntrustedCertificate(
            f"certificate {cert.subject.rfc4514_string()} (serial {cert.serial_number:x}) is not trusted: {exc}"
        ) from exc
    revocation_checker.check(cert, verified.chain[1], now)
    return identity_of(cert)
