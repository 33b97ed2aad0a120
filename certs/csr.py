"""Certificate signing requests from agents: the key stays on the agent's machine.

From a CSR we take only the public key (after checking the CSR's self-signature proves possession of the private
key). Subject, SAN, extensions and any attributes in it are ignored: the UPN and WireGuard key come from the
gateway's own records, never from what the requester claims.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from certs.errors import CsrSignatureInvalid, MalformedCsr, UnsupportedKeyType

ACCEPTED_CURVES = (ec.SECP256R1, ec.SECP384R1)
MIN_RSA_BITS = 2048


def check_public_key(key: CertificatePublicKeyTypes) -> CertificatePublicKeyTypes:
    """Accept EC P-256/P-384 and RSA >= 2048 only: what browsers, openssl and AD CS all handle."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        if isinstance(key.curve, ACCEPTED_CURVES):
            return key
        raise UnsupportedKeyType(f"EC curve {key.curve.name} is not accepted; generate a P-256 (prime256v1) key")
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size >= MIN_RSA_BITS:
            return key
        raise UnsupportedKeyType(f"RSA key of {key.key_size} bits is too short; generate one of at least 2048 bits")
    raise UnsupportedKeyType(
        f"{type(key).__name__.lstrip('_')} keys are not accepted (browsers refuse Ed25519 client certificates); "
        "generate an EC P-256 key"
    )


def public_key_from_csr(csr_pem: str | bytes) -> CertificatePublicKeyTypes:
    """The CSR's public key, after proving the requester holds the private key and the key type is accepted."""
    data = csr_pem.encode("ascii", errors="replace") if isinstance(csr_pem, str) else csr_pem
    try:
        csr = x509.load_pem_x509_csr(data)
        key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise MalformedCsr(
            "the certificate request is not a PEM 'CERTIFICATE REQUEST' that can be read; generate it again"
        ) from exc
    check_public_key(key)
    try:
        valid = csr.is_signature_valid
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CsrSignatureInvalid("the certificate request's signature cannot be checked; generate it again") from exc
    if not valid:
        raise CsrSignatureInvalid(
            "the certificate request's signature does not match its key: it was altered or not made with the "
            "private key; generate it again on the agent's machine"
        )
    return key
