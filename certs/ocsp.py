"""An OCSP responder (RFC 6960) for certificates of our issuing CA, with the status from the caller.

Responder model: the issuing CA signs responses itself (RFC 6960 §2.2, the CA as responder; no delegated
responder certificate), identified by key hash. Clients need nothing beyond the chain they already have. The
answer for each serial comes from `lookup`, which the gateway backs with its certificate table, so a revocation
is visible on the very next request.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from certs.authority import Authority
from certs.crl import RevocationReason

RESPONSE_VALIDITY = timedelta(hours=1)


class CertState(enum.Enum):
    """RFC 6960 §2.2 certificate status values."""

    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class CertStatus:
    """What the gateway knows about one serial of our issuing CA."""

    state: CertState
    revoked_at: datetime | None = None
    reason: RevocationReason | None = None

    def __post_init__(self) -> None:
        if self.state is CertState.REVOKED and self.revoked_at is None:
            raise ValueError("a revoked CertStatus needs revoked_at: the time the revocation was recorded")


_STATUS = {
    CertState.GOOD: ocsp.OCSPCertStatus.GOOD,
    CertState.REVOKED: ocsp.OCSPCertStatus.REVOKED,
    CertState.UNKNOWN: ocsp.OCSPCertStatus.UNKNOWN,
}


def _issuer_hashes(authority: Authority, algorithm: hashes.HashAlgorithm) -> tuple[bytes, bytes]:
    """issuerNameHash and issuerKeyHash of our issuing CA under the request's hash (RFC 6960 §4.1.1)."""
    ca = authority.issuing_cert
    key_bits = authority.issuing_key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    name_hash, key_hash = hashes.Hash(algorithm), hashes.Hash(algorithm)
    name_hash.update(ca.subject.public_bytes())
    key_hash.update(key_bits)
    return name_hash.finalize(), key_hash.finalize()


def _unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(serialization.Encoding.DER)


def build_ocsp_response(
    authority: Authority,
    request_der: bytes,
    lookup: Callable[[int], CertStatus],
    now: datetime,
    validity: timedelta = RESPONSE_VALIDITY,
) -> bytes:
    """The DER OCSP response to `request_der`: never raises on a bad request, answers malformedRequest instead.

    A request naming another issuer gets `unauthorized` (RFC 5019 §2.2.3): we are not its responder. A request
    for several certificates at once is answered malformedRequest, as the underlying library reads one only.
    """
    try:
        request = ocsp.load_der_ocsp_request(request_der)
        algorithm = request.hash_algorithm
        issuer_hashes = (request.issuer_name_hash, request.issuer_key_hash)
    except (ValueError, UnsupportedAlgorithm, NotImplementedError):
        return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
    if issuer_hashes != _issuer_hashes(authority, algorithm):
        return _unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
    status = lookup(request.serial_number)
    builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
        issuer_name_hash=issuer_hashes[0],
        issuer_key_hash=issuer_hashes[1],
        serial_number=request.serial_number,
        algorithm=algorithm,
        cert_status=_STATUS[status.state],
        this_update=now,
        next_update=now + validity,
        revocation_time=status.revoked_at if status.state is CertState.REVOKED else None,
        revocation_reason=status.reason if status.state is CertState.REVOKED else None,
    )
    builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, authority.issuing_cert)
    try:
        nonce = request.extensions.get_extension_for_class(x509.OCSPNonce)
        builder = builder.add_extension(nonce.value, critical=False)
    except x509.ExtensionNotFound:
        pass
    response = builder.sign(authority.issuing_key, hashes.SHA256())
    return response.public_bytes(serialization.Encoding.DER)
