"""Issue, renew and revoke certificates, publish CRLs and answer OCSP, keeping the register in the database.

The ``certs`` library does the X.509 work and keeps no state; here every certificate it signs is recorded, every
revocation republishes the CRL in the same transaction, and every step writes an audit row.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Row, bindparam
from sqlmodel import Session, col, func, select

from certs.authority import Authority
from certs.crl import RevokedEntry, build_crl
from certs.identity import identity_of
from certs.issue import issue_agent_with_generated_key, renew_certificate, sign_agent_csr
from certs.ocsp import CertState, CertStatus, build_ocsp_response
from certs.profiles import PublicationUrls
from certs.server import issue_server_certificate
from gateway.audit.service import record
from gateway.clock import as_utc
from gateway.errors import Conflict, GatewayError, NotFound
from gateway.pki.models import CertificateKind, CrlPublication, IssuedCertificate

REASONS = {flag.value: flag for flag in x509.ReasonFlags if flag not in {x509.ReasonFlags.remove_from_crl}}
REVOCATION_REASONS = ("keyCompromise", "affiliationChanged", "superseded", "cessationOfOperation", "unspecified")
"""The reasons the security admin's page offers (RFC 5280 §5.3.1), the usual first."""


@dataclass(frozen=True)
class Actor:
    """Who asks, and from where: every audit row names both."""

    name: str
    source: str = ""


@dataclass(frozen=True)
class Issued:
    """A registered certificate, with the private key when the gateway generated it (shown once, never stored)."""

    row: IssuedCertificate
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey | None = None


def publication_urls(public_url: str) -> PublicationUrls:
    return PublicationUrls(ocsp_url=f"{public_url}/pki/ocsp", crl_url=f"{public_url}/pki/crl")


def serial_hex(serial: int) -> str:
    return f"{serial:X}"


def parse_serial(text: str) -> int:
    try:
        return int(text.strip().removeprefix("0x").replace(":", ""), 16)
    except ValueError:
        raise NotFound(f"{text!r} is not a certificate serial (hexadecimal, as `sohogw cert list` shows)") from None


def _register(
    db: Session,
    cert: x509.Certificate,
    kind: CertificateKind,
    actor: Actor,
    person_id: str | None = None,
    renewed_from: str | None = None,
) -> IssuedCertificate:
    identity = identity_of(cert)
    row = IssuedCertificate(
        serial=serial_hex(cert.serial_number),
        kind=kind,
        subject=cert.subject.rfc4514_string(),
        upn=identity.upn,
        person_id=person_id,
        fingerprint_sha256=identity.fingerprint_sha256,
        wireguard_key=identity.wireguard_public_key,
        not_before=identity.not_before,
        not_after=identity.not_after,
        pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        issued_by=actor.name,
        renewed_from=renewed_from,
    )
    db.add(row)
    db.flush()
    record(
        db,
        actor=actor.name,
        source=actor.source,
        action="cert.issue" if renewed_from is None else "cert.renew",
        target=row.serial,
        outcome="success",
        detail={
            "kind": kind.value,
            "subject": row.subject,
            "upn": row.upn,
            "person": person_id,
            "renewed_from": renewed_from,
        },
    )
    return row


def issue_agent_certificate(
    db: Session,
    authority: Authority,
    *,
    upn: str,
    wireguard_key: str,
    person_id: str | None,
    actor: Actor,
    now: datetime,
    lifetime: timedelta,
    urls: PublicationUrls,
    csr_pem: str | bytes | None = None,
    email: str | None = None,
    account: str | None = None,
) -> Issued:
    """Sign the agent's CSR, or generate a key pair when no CSR is given (for a PKCS#12 hand-over). ``person_id`` is
    the directory's id of the person it is for, kept on the register's row so taking their seat away finds it by
    the person, not by a name; None only where no directory entry is known (it is then matched by name)."""
    options = {"email": email, "account": account, "lifetime": lifetime, "urls": urls}
    if csr_pem is not None:
        cert = sign_agent_csr(authority, csr_pem, upn, wireguard_key, now, **options)  # type: ignore[arg-type]
        return Issued(_register(db, cert, CertificateKind.AGENT, actor, person_id), cert)
    made = issue_agent_with_generated_key(authority, upn, wireguard_key, now, **options)  # type: ignore[arg-type]
    return Issued(_register(db, made.cert, CertificateKind.AGENT, actor, person_id), made.cert, made.key)


def issue_server(
    db: Session,
    authority: Authority,
    *,
    dns_names: list[str],
    ip_addresses: list[str],
    actor: Actor,
    now: datetime,
    lifetime: timedelta,
    urls: PublicationUrls,
) -> Issued:
    from ipaddress import ip_address

    try:
        addresses = [ip_address(a) for a in ip_addresses]
    except ValueError as error:
        raise GatewayError(str(error)) from None
    made = issue_server_certificate(authority, dns_names, addresses, now, lifetime, urls)
    return Issued(_register(db, made.cert, CertificateKind.SERVER, actor), made.cert, made.key)


def get_certificate(db: Session, serial: str) -> IssuedCertificate:
    row = db.exec(select(IssuedCertificate).where(IssuedCertificate.serial == serial_hex(parse_serial(serial)))).first()
    if row is None:
        raise NotFound(f"no certificate with serial {serial} was issued by this gateway")
    return row


def renew(
    db: Session,
    authority: Authority,
    serial: str,
    *,
    actor: Actor,
    now: datetime,
    lifetime: timedelta,
    urls: PublicationUrls,
    sole_signer: Callable[[Session, str], str | None],
) -> Issued:
    """A fresh certificate for the same key, subject, WireGuard key and person; the old one stays valid until it
    expires. An agent certificate issued before certificates were bound (``person_id`` NULL) binds its successor to
    the one person whose sessions signed in with it, as migration 0025 bound the others (``sole_signer`` with the
    old certificate's fingerprint: ``sessions.service.sole_person_signed_in_with``, handed down because sessions sit
    above pki); else the successor stays unbound too, matched by name as its predecessor was."""
    old = get_certificate(db, serial)
    if old.revoked_at is not None:
        raise Conflict(f"certificate {old.serial} is revoked; issue a new one instead of renewing it")
    person_id = old.person_id
    if person_id is None and old.kind == CertificateKind.AGENT:
        person_id = sole_signer(db, old.fingerprint_sha256)
    cert = renew_certificate(authority, x509.load_pem_x509_certificate(old.pem.encode()), now, lifetime, urls)
    return Issued(_register(db, cert, old.kind, actor, person_id, renewed_from=old.serial), cert)


def revoke(
    db: Session, authority: Authority, serial: str, reason: str, *, actor: Actor, now: datetime, crl_validity: timedelta
) -> IssuedCertificate:
    """Revoke and republish the CRL in the same transaction, so no reader sees the one without the other."""
    if reason not in REASONS:
        raise GatewayError(f"unknown revocation reason {reason!r}; use one of: {', '.join(sorted(REASONS))}")
    row = get_certificate(db, serial)
    if row.revoked_at is not None:
        raise Conflict(f"certificate {row.serial} was already revoked at {as_utc(row.revoked_at):%Y-%m-%d %H:%M} UTC")
    row.revoked_at, row.revocation_reason = now, reason
    db.add(row)
    db.flush()
    record(
        db,
        actor=actor.name,
        source=actor.source,
        action="cert.revoke",
        target=row.serial,
        outcome="success",
        detail={"reason": reason, "upn": row.upn, "person": row.person_id},
    )
    publish_crl(db, authority, now=now, validity=crl_validity)
    return row


def revoked_entries(db: Session, now: datetime) -> list[RevokedEntry]:
    """Revocations of certificates not yet expired: an expired one need not stay on the CRL (RFC 5280 §3.3)."""
    rows = db.exec(
        select(IssuedCertificate.serial, IssuedCertificate.revoked_at, IssuedCertificate.revocation_reason)
        .where(col(IssuedCertificate.revoked_at).is_not(None))
        .where(col(IssuedCertificate.not_after) > now)
    ).all()
    return [RevokedEntry(int(serial, 16), as_utc(at), REASONS[reason]) for serial, at, reason in rows if at]


def publish_crl(db: Session, authority: Authority, *, now: datetime, validity: timedelta) -> CrlPublication:
    """Sign and store the next CRL. Two nodes racing get distinct numbers or one fails on the primary key."""
    number = (db.exec(select(func.max(CrlPublication.number))).one() or 0) + 1
    entries = revoked_entries(db, now)
    crl = build_crl(authority, entries, number, now, now + validity)
    publication = CrlPublication(
        number=number,
        this_update=now,
        next_update=now + validity,
        revoked_count=len(entries),
        der=crl.public_bytes(serialization.Encoding.DER),
    )
    db.add(publication)
    db.flush()
    return publication


def current_crl(db: Session) -> CrlPublication | None:
    return db.exec(select(CrlPublication).order_by(col(CrlPublication.number).desc()).limit(1)).first()


_REGISTER = IssuedCertificate.__table__  # type: ignore[attr-defined]
_REVOCATION_OF = select(_REGISTER.c.revoked_at, _REGISTER.c.revocation_reason).where(
    _REGISTER.c.serial == bindparam("serial")
)
"""Built once, a table statement of the two columns: every sign-in and every re-check of a live session asks it."""


def certificate_status(db: Session, serial: int) -> CertStatus:
    """Our register's answer for one of our serials, read at every call: a revocation counts at once."""
    return register_answer(db.execute(_REVOCATION_OF, {"serial": serial_hex(serial)}).first())


def register_answer(row: Row[Any] | None) -> CertStatus:
    """What our register's row of a serial (its ``revoked_at`` and ``revocation_reason``; None: no row) says."""
    if row is None:
        return CertStatus(CertState.UNKNOWN)
    if row.revoked_at is not None:
        return CertStatus(CertState.REVOKED, as_utc(row.revoked_at), REASONS[row.revocation_reason or "unspecified"])
    return CertStatus(CertState.GOOD)


def answer_ocsp(db: Session, authority: Authority, request_der: bytes, now: datetime) -> bytes:
    return build_ocsp_response(authority, request_der, lambda serial: certificate_status(db, serial), now)


def list_certificates(
    db: Session, *, now: datetime, expiring_within_days: int | None = None, include_revoked: bool = True
) -> list[IssuedCertificate]:
    query = select(IssuedCertificate).order_by(col(IssuedCertificate.not_after))
    if expiring_within_days is not None:
        query = query.where(col(IssuedCertificate.not_after) > now).where(
            col(IssuedCertificate.not_after) <= now + timedelta(days=expiring_within_days)
        )
    if not include_revoked:
        query = query.where(col(IssuedCertificate.revoked_at).is_(None))
    return list(db.exec(query).all())
