"""Asking an issuer's OCSP responder about one certificate, and believing only a properly signed answer.

The answer must be signed by the issuer itself or by a delegated responder certificate that the issuer signed
and marked with the OCSPSigning EKU (RFC 6960 §4.2.2.2; AD CS Online Responders work this way), must be about
this very certificate, and must be current.
"""

from __future__ import annotations

import enum
import os
from datetime import datetime, timedelta

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

CLOCK_SKEW = timedelta(minutes=5)
MAX_AGE_WITHOUT_NEXT_UPDATE = timedelta(hours=1)


class OcspAnswer(enum.Enum):
    GOOD = "good"
    REVOKED = "revoked"


def _signature_valid(signer: x509.Certificate, response: ocsp.OCSPResponse) -> bool:
    key = signer.public_key()
    algorithm = response.signature_hash_algorithm
    if algorithm is None:
        return False
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(algorithm))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(response.signature, response.tbs_response_bytes, padding.PKCS1v15(), algorithm)
        else:
            return False
    except InvalidSignature:
        return False
    return True


def _is_delegated_responder(candidate: x509.Certificate, issuer: x509.Certificate, now: datetime) -> bool:
    try:
        candidate.verify_directly_issued_by(issuer)
        usages = candidate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False
    in_validity = candidate.not_valid_before_utc <= now <= candidate.not_valid_after_utc
    return in_validity and ExtendedKeyUsageOID.OCSP_SIGNING in usages


def _signer_ok(response: ocsp.OCSPResponse, issuer: x509.Certificate, now: datetime) -> bool:
    candidates = [issuer] + [c for c in response.certificates if _is_delegated_responder(c, issuer, now)]
    return any(_signature_valid(signer, response) for signer in candidates)


def ask_ocsp(
    client: httpx.Client,
    url: str,
    cert: x509.Certificate,
    issuer: x509.Certificate,
    now: datetime,
    problems: list[str],
) -> OcspAnswer | None:
    """GOOD or REVOKED from a trustworthy answer; None (with the reason appended to `problems`) otherwise."""
    nonce = os.urandom(16)
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(cert, issuer, hashes.SHA1())  # noqa: S303 - SHA-1 CertID is what RFC 5019 responders expect
        .add_extension(x509.OCSPNonce(nonce), critical=False)
        .build()
    )
    try:
        reply = client.post(
            url,
            content=request.public_bytes(serialization.Encoding.DER),
            headers={"Content-Type": "application/ocsp-request"},
        )
        reply.raise_for_status()
        response = ocsp.load_der_ocsp_response(reply.content)
    except (httpx.HTTPError, ValueError) as exc:
        problems.append(f"OCSP {url}: {exc}")
        return None
    if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        problems.append(f"OCSP {url} answered {response.response_status.name}")
        return None
    same_cert = (
        response.serial_number == cert.serial_number
        and response.issuer_key_hash == request.issuer_key_hash
        and response.issuer_name_hash == request.issuer_name_hash
    )
    if not same_cert or not _signer_ok(response, issuer, now):
        problems.append(f"OCSP {url} sent an answer not about this certificate or not signed by its issuer")
        return None
    try:
        echoed = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        echoed = nonce  # RFC 5019 responders may omit the nonce; freshness is then judged by the times below
    latest = response.next_update_utc or response.this_update_utc + MAX_AGE_WITHOUT_NEXT_UPDATE
    if echoed != nonce or response.this_update_utc > now + CLOCK_SKEW or latest < now:
        problems.append(f"OCSP {url} sent a stale or replayed answer")
        return None
    if response.certificate_status is ocsp.OCSPCertStatus.GOOD:
        return OcspAnswer.GOOD
    if response.certificate_status is ocsp.OCSPCertStatus.REVOKED:
        return OcspAnswer.REVOKED
    problems.append(f"OCSP {url} does not know the certificate (status unknown)")
    return None
