"""Which certificates the gateway trusts for login: our own chain plus imported company CA chains (e.g. AD CS).

Path building and RFC 5280 checks are done by cryptography's `x509.verification` (the webpki-based verifier of
pyca), not by hand: a hand-rolled path builder is where certificate bugs live. On top of it we require the
clientAuth EKU explicitly and ask a revocation checker about the leaf.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID

from certs.errors import CertificateOutOfValidity, UntrustedCertificate, WrongCertificatePurpose
from certs.identity import CertificateIdentity, identity_of

PEM_MARKER = b"-----BEGIN CERTIFICATE-----"
VERIFIED_PATHS_KEPT = 4096
"""Client certificates whose verified path is kept (a few KB each): more than the people of a large call centre."""


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


@dataclass(frozen=True)
class _VerifiedPath:
    """The issuer a client certificate's chain was built to, the time span in which every certificate of that
    chain is valid (outside it the chain is built again, and fails), and who the certificate names."""

    certificate: x509.Certificate
    issuer: x509.Certificate
    valid_from: datetime
    valid_until: datetime

    @cached_property
    def identity(self) -> CertificateIdentity:
        """Read at the first verification that passes revocation, as before any path was kept: a certificate that
        is revoked is refused as revoked, whatever else is wrong with it. A certificate whose identity cannot be
        read is refused at every verification (an exception is never kept)."""
        return identity_of(self.certificate)


_PathKey = tuple[x509.Certificate, TrustStore, tuple[x509.Certificate, ...]]


class _VerifiedPaths:
    """Chains already built, by the certificate, the trust store and the chain the client presented, the least
    recently used forgotten first.

    Building the path costs ~0.5 ms of CPU at every sign-in and re-check, and reading who the certificate names
    (its SAN, subject, fingerprint, WireGuard key) ~0.2 ms more; neither answer depends on anything else but the
    time, which the kept span covers. A changed trust store (a CA imported or removed) is another key, so it takes
    effect at once; revocation is never kept here: it is asked at every verification. Refusals are not kept."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._paths: OrderedDict[_PathKey, _VerifiedPath] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: _PathKey, now: datetime) -> _VerifiedPath | None:
        with self._lock:
            path = self._paths.get(key)
            if path is not None:
                self._paths.move_to_end(key)
        return path if path is not None and path.valid_from <= now <= path.valid_until else None

    def keep(self, key: _PathKey, path: _VerifiedPath) -> None:
        with self._lock:
            self._paths[key] = path
            self._paths.move_to_end(key)
            while len(self._paths) > self._size:
                self._paths.popitem(last=False)


_verified_paths = _VerifiedPaths(VERIFIED_PATHS_KEPT)


def _verified_path(
    cert: x509.Certificate, trust_store: TrustStore, now: datetime, presented_chain: tuple[x509.Certificate, ...]
) -> _VerifiedPath:
    """The chain from ``cert`` to one of the store's anchors, valid at ``now``; raises UntrustedCertificate."""
    key = (cert, trust_store, presented_chain)
    path = _verified_paths.get(key, now)
    if path is not None:
        return path
    verifier = verification.PolicyBuilder().store(verification.Store(list(trust_store.anchors))).time(now)
    try:
        chain = verifier.build_client_verifier().verify(cert, [*trust_store.intermediates, *presented_chain]).chain
    except verification.VerificationError as exc:
        raise UntrustedCertificate(
            f"certificate {cert.subject.rfc4514_string()} (serial {cert.serial_number:x}) is not trusted: {exc}"
        ) from exc
    path = _VerifiedPath(
        certificate=cert,
        issuer=chain[1],
        valid_from=max(c.not_valid_before_utc for c in chain),
        valid_until=min(c.not_valid_after_utc for c in chain),
    )
    _verified_paths.keep(key, path)
    return path


def verify_client_certificate(
    cert: x509.Certificate,
    trust_store: TrustStore,
    now: datetime,
    revocation_checker: RevocationChecker,
    presented_chain: Iterable[x509.Certificate] = (),
) -> CertificateIdentity:
    """Verify chain, validity and clientAuth, then revocation of the leaf; return who the certificate names.

    Revocation is checked for the leaf only, and at every call: the CAs are ones the administrator imported by hand,
    and are removed from the trust store by hand when compromised.
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
    path = _verified_path(cert, trust_store, now, tuple(presented_chain))
    revocation_checker.check(cert, path.issuer, now)
    return path.identity
