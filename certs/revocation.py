"""Revocation checking over HTTP: the certificate's own OCSP responder (AIA), then its CRL distribution points.

Fail closed: when neither an OCSP answer nor a current, correctly signed CRL can be had, the certificate is
refused with RevocationUnknown. There is deliberately no soft-fail switch; a gateway that lets people in when the
company's CRL server is down lets a fired employee in too.

CRLs are kept, but asked for again once they are older than ``max_age`` (or the server's shorter
``Cache-Control: max-age``; ``no-cache``/``no-store`` mean every time): a company that revokes at 10:00 is obeyed
seconds later, not at the CRL's nextUpdate a week on. Asking again is a conditional GET (``If-None-Match`` with the
ETag, ``If-Modified-Since`` with the Last-Modified the server sent), so an unchanged CRL costs a 304 and no download.
``refresh`` asks again for every CRL held and says which changed, for a job that re-checks live sessions at once.
When the CRL server cannot be reached, the last good CRL still counts until its own nextUpdate: a short outage is
bridged by it, never by a guess.

A CRL is never replaced by an older one: one with an earlier thisUpdate or a lower CRL Number than the CRL held
(RFC 5280 §5.2.3: the number increases monotonically) is refused and the held one kept. Otherwise anyone on the plain
HTTP path could replay the correctly signed CRL from before a revocation and make the revoked certificate work again.
Each refusal is logged and kept as a ``CrlRollback`` until the caller takes it (``take_rollbacks``) to audit it.

Only http:// URLs are used (RFC 5280 §4.2.1.13 relying parties commonly fetch over HTTP; AD CS lists an ldap://
URL first and an http:// one after it). Delta CRLs and indirect CRLs are not supported.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import httpx
from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID

from certs.errors import CertificateRevokedError, RevocationUnknown
from certs.ocsp_client import OcspAnswer, ask_ocsp

CLOCK_SKEW = timedelta(minutes=5)

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class HeldCrl:
    """A CRL as last fetched, with what HTTP caching needs to ask for it again."""

    url: str
    crl: x509.CertificateRevocationList
    issuer: x509.Certificate
    digest: str
    etag: str | None
    last_modified: str | None
    fresh_until: datetime


@dataclass(frozen=True)
class CrlRollback:
    """A correctly signed CRL refused because it is older than the one held: a replay of the CRL from before a
    revocation, or a CA publishing out of order. Either way a person must look, so the gateway audits it."""

    url: str
    held_this_update: datetime
    held_number: int | None
    offered_this_update: datetime
    offered_number: int | None

    def __str__(self) -> str:
        return (
            f"CRL {self.url} is older than the one held (thisUpdate {self.offered_this_update:%Y-%m-%d %H:%M:%S} "
            f"UTC, CRL Number {self.offered_number} against {self.held_this_update:%Y-%m-%d %H:%M:%S} UTC, "
            f"CRL Number {self.held_number}): refused, the held CRL is kept"
        )


def _crl_number(crl: x509.CertificateRevocationList) -> int | None:
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return None


def _rollback(
    url: str, offered: x509.CertificateRevocationList, held: x509.CertificateRevocationList
) -> CrlRollback | None:
    """The rollback, if ``offered`` was issued before ``held``; CRL Numbers are compared only when both carry one."""
    offered_number, held_number = _crl_number(offered), _crl_number(held)
    older_number = offered_number is not None and held_number is not None and offered_number < held_number
    if offered.last_update_utc < held.last_update_utc or older_number:
        return CrlRollback(url, held.last_update_utc, held_number, offered.last_update_utc, offered_number)
    return None


_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*(\d+)", re.IGNORECASE)


def _fresh_for(cache_control: str, max_age: timedelta) -> timedelta:
    """How long the server lets us keep its answer (RFC 9111 §5.2.2), never longer than our own ``max_age``."""
    directives = cache_control.lower()
    if "no-cache" in directives or "no-store" in directives:
        return timedelta(0)
    found = _MAX_AGE.search(cache_control)
    return min(timedelta(seconds=int(found.group(1))), max_age) if found else max_age


class HttpRevocationChecker:
    """Asks OCSP, then CRLs, with a timeout per request; keeps each CRL and asks again once it is ``max_age`` old."""

    def __init__(
        self,
        timeout_seconds: float = 5.0,
        client: httpx.Client | None = None,
        max_age: timedelta = timedelta(seconds=30),
    ) -> None:
        self._client = client or httpx.Client(timeout=timeout_seconds, trust_env=False, follow_redirects=False)
        self._max_age = max_age
        self._crls: dict[str, HeldCrl] = {}
        self._rollbacks: list[CrlRollback] = []
        self._lock = threading.Lock()

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

    def held(self) -> list[HeldCrl]:
        """The CRLs kept now, for reports (``sohogw ca refresh``)."""
        with self._lock:
            return list(self._crls.values())

    def take_rollbacks(self) -> list[CrlRollback]:
        """The older CRLs refused since the last call, for the caller to audit (this library writes no audit)."""
        with self._lock:
            taken, self._rollbacks = self._rollbacks, []
        return taken

    def refresh(self, now: datetime, *, everything: bool = False) -> list[str]:
        """Ask again for every held CRL that is due (``everything``: all of them); return the URLs whose CRL changed.

        A CRL server that does not answer keeps its last good CRL (until its nextUpdate, as ``check`` does)."""
        changed = []
        for held in self.held():
            if not everything and now < held.fresh_until:
                continue
            fetched = self._fetch(held.url, held.issuer, now, [], held)
            if fetched is not None and fetched.digest != held.digest:
                changed.append(held.url)
        return changed

    def _current_crl(
        self, url: str, issuer: x509.Certificate, now: datetime, problems: list[str]
    ) -> x509.CertificateRevocationList | None:
        with self._lock:
            held = self._crls.get(url)
        if held is not None and held.issuer != issuer:
            held = None  # another issuer's certificate names the same URL: its CRL must be fetched and checked anew
        if held is not None and now < held.fresh_until and _current(held.crl, now):
            return held.crl
        fetched = self._fetch(url, issuer, now, problems, held)
        if fetched is not None:
            return fetched.crl
        if held is not None and _current(held.crl, now):
            return held.crl  # the server is unreachable or answers nonsense: the last good CRL bridges it
        return None

    def _fetch(
        self, url: str, issuer: x509.Certificate, now: datetime, problems: list[str], held: HeldCrl | None
    ) -> HeldCrl | None:
        """A conditional GET; the CRL kept (renewed on 304, replaced on 200) or None with the problem noted."""
        headers = {}
        if held is not None and held.etag:
            headers["If-None-Match"] = held.etag
        if held is not None and held.last_modified:
            headers["If-Modified-Since"] = held.last_modified
        try:
            response = self._client.get(url, headers=headers)
            fresh_until = now + _fresh_for(response.headers.get("cache-control", ""), self._max_age)
            if response.status_code == 304 and held is not None and _current(held.crl, now):
                return self._keep(replace(held, fresh_until=fresh_until))
            response.raise_for_status()
            crl = _parse_crl(response.content)
        except (httpx.HTTPError, ValueError) as exc:
            problems.append(f"CRL {url}: {exc}")
            return None
        if crl.issuer != issuer.subject or not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
            problems.append(f"CRL {url} is not signed by {issuer.subject.rfc4514_string()}")
            return None
        rollback = _rollback(url, crl, held.crl) if held is not None else None
        if held is not None and rollback is not None:
            log.warning("%s", rollback)
            problems.append(str(rollback))
            # The held CRL is still the newest we know: keep it for another period, as a 304 would, so a replaying
            # server costs one refusal per period rather than one per sign-in.
            with self._lock:
                self._rollbacks.append(rollback)
            self._keep(replace(held, fresh_until=fresh_until))
            return None
        if not _current(crl, now):
            problems.append(
                f"CRL {url} is not current (thisUpdate {crl.last_update_utc}, nextUpdate {crl.next_update_utc})"
            )
            return None
        digest = hashlib.sha256(response.content).hexdigest()
        etag, last_modified = response.headers.get("etag"), response.headers.get("last-modified")
        return self._keep(HeldCrl(url, crl, issuer, digest, etag, last_modified, fresh_until))

    def _keep(self, held: HeldCrl) -> HeldCrl:
        with self._lock:
            self._crls[held.url] = held
        return held


def _current(crl: x509.CertificateRevocationList, now: datetime) -> bool:
    return crl.last_update_utc <= now + CLOCK_SKEW and crl.next_update_utc is not None and now < crl.next_update_utc


def _parse_crl(data: bytes) -> x509.CertificateRevocationList:
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)
