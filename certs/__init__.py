"""X.509 for the SOHO gateway: our two-tier CA, agent and server certificates, CRL, OCSP, trust of a company CA.

A pure library: it stores nothing (the gateway keeps issued certificates and revocations in its database and
passes them in), imports nothing of ours, and takes the time as an argument so tests can move it.
"""

from certs.authority import Authority, init_authority, load_authority
from certs.crl import RevocationReason, RevokedEntry, build_crl
from certs.csr import public_key_from_csr
from certs.errors import (
    AuthorityExists,
    AuthorityExpired,
    AuthorityMissing,
    CertificateError,
    CertificateRevokedError,
    CsrSignatureInvalid,
    InvalidIdentity,
    InvalidWireGuardKey,
    KeyFilePermissionsTooOpen,
    MalformedCsr,
    PassphraseRequired,
    RevocationUnknown,
    UnsupportedKeyType,
    UntrustedCertificate,
    WrongPassphrase,
)
from certs.expiry import expiring_within
from certs.identity import CertificateIdentity, identity_of
from certs.issue import IssuedCertificate, issue_agent_with_generated_key, renew_certificate, sign_agent_csr
from certs.ocsp import CertState, CertStatus, build_ocsp_response
from certs.pkcs12 import export_pkcs12
from certs.profiles import PublicationUrls
from certs.revocation import HttpRevocationChecker
from certs.server import issue_server_certificate
from certs.trust import RevocationChecker, TrustStore, read_certificates, verify_client_certificate
from certs.wgkey import WIREGUARD_KEY_URI_PREFIX, wireguard_key_of

__all__ = [
    "WIREGUARD_KEY_URI_PREFIX",
    "Authority",
    "AuthorityExists",
    "AuthorityExpired",
    "AuthorityMissing",
    "CertState",
    "CertStatus",
    "CertificateError",
    "CertificateIdentity",
    "CertificateRevokedError",
    "CsrSignatureInvalid",
    "HttpRevocationChecker",
    "InvalidIdentity",
    "InvalidWireGuardKey",
    "IssuedCertificate",
    "KeyFilePermissionsTooOpen",
    "MalformedCsr",
    "PassphraseRequired",
    "PublicationUrls",
    "RevocationChecker",
    "RevocationReason",
    "RevocationUnknown",
    "RevokedEntry",
    "TrustStore",
    "UnsupportedKeyType",
    "UntrustedCertificate",
    "WrongPassphrase",
    "build_crl",
    "build_ocsp_response",
    "expiring_within",
    "export_pkcs12",
    "identity_of",
    "init_authority",
    "issue_agent_with_generated_key",
    "issue_server_certificate",
    "load_authority",
    "public_key_from_csr",
    "read_certificates",
    "renew_certificate",
    "sign_agent_csr",
    "verify_client_certificate",
    "wireguard_key_of",
]
