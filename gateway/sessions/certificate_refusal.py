"""Why a client certificate is refused, in words the person at the browser can act on.

The library's messages are for administrators: they name serials, CRL and OCSP URLs inside the company network and
the operating system's error numbers. Those go into the audit row (``problem``); the person is told what happened to
their certificate and what to do, with no internal address in it. Each kind of refusal has its own audit reason.
"""

from dataclasses import dataclass

from cryptography import x509

from certs.errors import (
    CertificateError,
    CertificateOutOfValidity,
    CertificateRevokedError,
    RevocationUnknown,
    WrongCertificatePurpose,
)


@dataclass(frozen=True)
class CertificateRefusal:
    reason: str
    """The audit outcome and the key of the translated message (``reason.<reason>``)."""
    message: str
    """The English message; translations fill in ``values``."""
    values: dict[str, str]


def _issuer_name(cert: x509.Certificate) -> str:
    names = cert.issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[0].value) if names else cert.issuer.rfc4514_string()


def certificate_refusal(error: CertificateError, cert: x509.Certificate) -> CertificateRefusal:
    """The person-facing refusal for ``error`` raised while judging ``cert``."""
    if isinstance(error, CertificateOutOfValidity):
        until = f"{cert.not_valid_after_utc:%Y-%m-%d}"
        since = f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        return CertificateRefusal(
            "certificate_out_of_validity",
            f"your certificate is valid from {since} until {until}, not now; if it has expired, ask for a new one, "
            "otherwise check your computer's date and time",
            {"since": since, "until": until},
        )
    if isinstance(error, WrongCertificatePurpose):
        return CertificateRefusal(
            "certificate_wrong_purpose",
            "this certificate is not made for signing in; when the browser asks, choose the certificate issued to you "
            "for SOHO Gateway",
            {},
        )
    if isinstance(error, CertificateRevokedError):
        return CertificateRefusal(
            "certificate_revoked",
            "your certificate has been revoked; ask your security administrator for a new one",
            {},
        )
    if isinstance(error, RevocationUnknown):
        return CertificateRefusal(
            "certificate_status_unknown",
            "whether your certificate is still valid cannot be checked right now; try again in a few minutes, and "
            "tell the IT service desk if this goes on",
            {},
        )
    issuer = _issuer_name(cert)
    return CertificateRefusal(
        "certificate_untrusted",
        f"your certificate was issued by {issuer}, which this gateway does not trust; when the browser asks, choose "
        "the certificate your company issued to you for SOHO Gateway",
        {"issuer": issuer},
    )
