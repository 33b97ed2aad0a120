"""One error hierarchy for the certificate library.

Every message names what went wrong and what a person can do about it, because these errors end up in an
administrator's terminal or in a portal page, not in a debugger.
"""

from __future__ import annotations


class CertificateError(Exception):
    """Base of every error raised by `certs`; the gateway maps it to a refusal."""


class MalformedCsr(CertificateError):
    """The certificate signing request cannot be parsed."""


class CsrSignatureInvalid(CertificateError):
    """The CSR's self-signature does not verify: it was altered or made without the private key."""


class UnsupportedKeyType(CertificateError):
    """The public key is not EC P-256/P-384 or RSA of at least 2048 bits."""


class InvalidWireGuardKey(CertificateError):
    """The WireGuard public key is not 32 bytes in WireGuard's base64 form."""


class InvalidIdentity(CertificateError):
    """A UPN, e-mail address, DNS name or account name cannot go into a certificate."""


class AuthorityExists(CertificateError):
    """`init_authority` found CA files already present and will not overwrite them."""


class AuthorityMissing(CertificateError):
    """A CA file that `load_authority` needs is absent."""


class AuthorityExpired(CertificateError):
    """The issuing CA is expired, not yet valid, or would expire before the requested certificate."""


class PassphraseRequired(CertificateError):
    """An empty passphrase was given where a private key or PKCS#12 file must be encrypted."""


class KeyFilePermissionsTooOpen(CertificateError):
    """A private key file is readable or writable by group or other users."""


class WrongPassphrase(CertificateError):
    """A private key file could not be decrypted with the given passphrase."""


class UntrustedCertificate(CertificateError):
    """A presented certificate does not chain to a trusted CA, is out of validity, or lacks clientAuth."""


class CertificateOutOfValidity(UntrustedCertificate):
    """The certificate has expired or is not valid yet (the gateway's clock, the certificate's notBefore/notAfter)."""


class WrongCertificatePurpose(UntrustedCertificate):
    """The certificate is not for client authentication (no clientAuth extended key usage)."""


class CertificateRevokedError(CertificateError):
    """The certificate is listed as revoked by its issuer's CRL or OCSP responder."""


class RevocationUnknown(CertificateError):
    """No CRL or OCSP answer could be had, so the certificate is refused (fail closed)."""
