"""Revocation checking over HTTP: the certificate's own OCSP responder (AIA), then its CRL distribution points.

Fail closed: when neither an OCSP answer nor a current, correctly signed CRL can be had, the certificate is
refused with RevocationUnknown. There is deliberately no soft-fail switch; a gateway that lets people in when the
company's CRL server is down lets a fired employee in too. CRLs are cached until their nextUpdate, so a short
outage of the CRL server is bridged by the last good CRL, never by a guess.

Only http:// URLs are used (RFC 5280 §4.2.1.13 relying parties commonly fetch over HTTP; AD CS lists an ldap://
URL first and an http:// one after it). Delta CRLs and indirect CRLs are not supported.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID

from certs.errors import CertificateRevokedError, RevocationUnknown
from certs.ocsp_client import OcspAnswer, ask_ocsp

CLOCK_SKEW = timedelta(minutes=5)


def _http_uris(names: list[x509.GeneralName]) -> list[str]:
    return [n.value for n in names if isinstance(n, x509.UniformResourceIdentifier) and n.value.startswith("http://")]


def ocsp_urls(cert: x509.Certificate) -> list[str]:
    """The certificate's OCSP responder URLs from its AIA extension."""
    try:
        access = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return []
    return _http_uris([d.access_location for d in access if d.access_method == AuthorityInformationAccessOID.OCSP])


def crl_urls(cert: x509.Certificate) -> list[str]:
    """The certificate's CRL distribution point URLs."""
    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return []
    return _http_uris([name for point in points for name in (point.full_name or [])])


def _revoked_by(crl: x509.CertificateRevocationList, cert: x509.Certificate) -> x509.RevokedCertificate | None:
    entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    if entry is None:
        return None
    try:
        reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return entry
    return None if reason is x509.ReasonFlags.remove_from_crl else entry


class HttpRevocationChecker:
    """Asks OCSP, then CRLs, with a timeout per request; keeps each CRL until its nextUpdate."""

    def __init__(self, timeout_seconds: float = 5.0, client: httpx.Client | None = None) -> None:
        self._client = client or httpx.Client(timeout=timeout_seconds, trust_env=False, follow_redirects=False)
        self._crls: dict[str, x509.CertificateRevocationList] = {}

    def check(self, cert: x509.Certificate, issuer: x509.Certificate, now: datetime) -> None:
        """Return if not revoked; raise CertificateRevokedError or RevocationUnknown."""
        problems: list[str] = []
        for url in ocsp_urls(cert):
            answer = ask_ocsp(self._client, url, cert, issuer, now, problems)
            if answer is OcspAnswer.GOOD:
                return
            if answer is OcspAnswer.REVOKED:
                raise CertificateRevokedError(
                    f"certificate serial {cert.serial_number:x} is revoked (OCSP responder {url})"
                )
        for url in crl_urls(cert):
            crl = self._current_crl(url, issuer, now, problems)
            if crl is None:
                continue
            entry = _revoked_by(crl, cert)
            if entry is not None:
                raise CertificateRevokedError(
                    f"certificate serial {cert.serial_number:x} was revoked on "
                    f"{entry.revocation_date_utc:%Y-%m-%d %H:%M} UTC (CRL {url})"
                )
            return
        if not problems:
            problems.append("it names no http:// OCSP responder and no http:// CRL distribution point")
        raise RevocationUnknown(
            f"revocation status of certificate serial {cert.serial_number:x} cannot be established, so it is "
            f"refused: {'; '.join(problems)}. Check that the issuer's CRL/OCSP server is reachable from the gateway."
        )

    def _current_crl(
        self, url: str, issuer: x509.Certificate, now: datetime, problems: list[str]
    ) -> x509.CertificateRevocationList | None:
        cached = self._crls.get(url)
        if cached is not None and cached.next_update_utc is not None and now < cached.next_update_utc:
            return cached
        try:
            response = self._client.get(url)
            response.raise_for_status()
            crl = _parse_crl(response.content)
        except (httpx.HTTPError, ValueError) as exc:
            problems.append(f"CRL {url}: {exc}")
            return None
        if crl.issuer != issuer.subject or not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
            problems.append(f"CRL {url} is not signed by {issuer.subject.rfc4514_string()}")
            return None
        if crl.last_update_utc > now + CLOCK_SKEW or crl.next_update_utc is None or crl.next_update_utc <= now:
            problems.append(
                f"CRL {url} is not current (thisUpdate {crl.last_update_utc}, nextUpdate {crl.next_update_utc})"
            )
            return None
        self._crls[url] = crl
        return crl


def _parse_crl(data: bytes) -> x509.CertificateRevocationList:
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)
