"""Which client certificates the portal and the VPN accept: ours, checked against our own register, and those of
imported company CAs (often AD CS), checked through their own CRL distribution points and OCSP responders."""

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

import sqlalchemy
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from sqlalchemy import bindparam, literal, true
from sqlmodel import Session, select

from certs.authority import Authority
from certs.errors import CertificateRevokedError, RevocationUnknown
from certs.identity import CertificateIdentity
from certs.ocsp import CertState, CertStatus
from certs.revocation import CrlRollback, HttpRevocationChecker
from certs.trust import TrustStore, read_certificates, verify_client_certificate
from gateway.audit.service import record
from gateway.errors import Conflict, GatewayError
from gateway.pki.models import IssuedCertificate, TrustedAuthority
from gateway.pki.service import Actor, register_answer, serial_hex


class RegisterRevocationChecker:
    """Our own certificates are judged by our register (no HTTP round trip to ourselves); others over HTTP.

    Asked for the leaf alone (`verify_client_certificate`), whose register row was read with the trust store."""

    def __init__(self, authority: Authority, leaf: int, status: CertStatus, remote: HttpRevocationChecker) -> None:
        self._authority, self._leaf, self._status, self._remote = authority, leaf, status, remote
        self.judged_by_register = False
        """Whether the leaf was ours, judged by our register: only then does the register's row describe it."""

    def check(self, cert: x509.Certificate, issuer: x509.Certificate, now: datetime) -> None:
        if issuer != self._authority.issuing_cert:
            self._remote.check(cert, issuer, now)
            return
        self.judged_by_register = cert.serial_number == self._leaf
        if cert.serial_number != self._leaf:  # the register was read for the leaf only: anything else is unknown
            raise RevocationUnknown(f"certificate serial {cert.serial_number:X} was not looked up in the register")
        status = self._status
        if status.state is CertState.REVOKED:
            raise CertificateRevokedError(f"certificate serial {cert.serial_number:X} was revoked")
        if status.state is CertState.UNKNOWN:
            raise RevocationUnknown(f"certificate serial {cert.serial_number:X} is not in this gateway's register")


_AUTHORITIES = TrustedAuthority.__table__  # type: ignore[attr-defined]
_IMPORTED_CHAINS = select(_AUTHORITIES.c.chain_pem).order_by(_AUTHORITIES.c.id)
_REGISTER = IssuedCertificate.__table__  # type: ignore[attr-defined]
_CHAINS_AND_REGISTER = (
    sqlalchemy.select(
        _REGISTER.c.serial,
        _REGISTER.c.revoked_at,
        _REGISTER.c.revocation_reason,
        _REGISTER.c.person_id,
        _AUTHORITIES.c.chain_pem,
    )
    .select_from(
        select(literal(1).label("one"))
        .subquery("one_row")
        .outerjoin(_REGISTER, _REGISTER.c.serial == bindparam("serial"))
        .outerjoin(_AUTHORITIES, true())
    )
    .order_by(_AUTHORITIES.c.id)
)
"""The imported chains, each beside our register's row of one serial (its columns null when the register has no
such row; one row with no chain when nothing is imported): what a verification reads, in one round trip, not two."""


@lru_cache(maxsize=8)
def _built_store(own_chain: tuple[x509.Certificate, ...], imported: tuple[str, ...]) -> TrustStore:
    return TrustStore.build(list(own_chain), [pem.encode() for pem in imported])


def trust_store(db: Session, authority: Authority) -> TrustStore:
    """Our chain and the imported company chains as the database holds them now.

    The chains are read at every call, so an import or a removal on any node counts at once; the store built from
    them (parsing, fingerprints, a signature check of each root: ~0.5 ms a sign-in) is kept for chains already seen.
    """
    return _built_store(tuple(authority.chain), tuple(db.execute(_IMPORTED_CHAINS).scalars()))


@dataclass(frozen=True, slots=True)
class VerifiedClient:
    """A client certificate that passed, and the person our register binds it to."""

    identity: CertificateIdentity
    person_id: str | None
    """The directory id of the person we issued it to (migration 0025); None for a company CA's certificate, or one
    of ours issued before certificates were bound: such a certificate is judged by the names it carries alone."""


def verify_client(
    db: Session,
    authority: Authority,
    cert: x509.Certificate,
    now: datetime,
    remote: HttpRevocationChecker,
    presented_chain: list[x509.Certificate] | None = None,
) -> VerifiedClient:
    """Chain, validity, clientAuth and revocation; raises a ``certs.errors.CertificateError`` when refused.

    The imported chains and our register's row of the certificate are read at every call, in one statement: an
    import, a removal or a revocation on any node counts at once. The row is read whoever issued the certificate and
    used only when we did (a company CA's serial may equal one of ours)."""
    rows = db.execute(_CHAINS_AND_REGISTER, {"serial": serial_hex(cert.serial_number)}).all()
    register = rows[0] if rows[0].serial is not None else None
    store = _built_store(tuple(authority.chain), tuple(row.chain_pem for row in rows if row.chain_pem is not None))
    checker = RegisterRevocationChecker(authority, cert.serial_number, register_answer(register), remote)
    identity = verify_client_certificate(cert, store, now, checker, presented_chain or [])
    bound = register.person_id if register is not None and checker.judged_by_register else None
    return VerifiedClient(identity, bound)


def import_company_ca(db: Session, name: str, chain_data: bytes, *, actor: Actor, now: datetime) -> TrustedAuthority:
    """Trust a company CA chain (PEM or DER, root included) beside ours; audited."""
    certs = read_certificates(chain_data)
    if not certs:
        raise GatewayError("no certificate found in the file; give the company CA chain as PEM or DER")
    TrustStore.build([], [chain_data])  # refuses a chain without its root
    root = next(c for c in certs if c.issuer == c.subject)
    fingerprint = root.fingerprint(hashes.SHA256()).hex()
    if db.exec(select(TrustedAuthority).where(TrustedAuthority.fingerprint_sha256 == fingerprint)).first():
        raise Conflict(f"the CA {root.subject.rfc4514_string()} is already trusted")
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
    row = TrustedAuthority(
        name=name,
        subject=root.subject.rfc4514_string(),
        fingerprint_sha256=fingerprint,
        chain_pem=pem.decode(),
        imported_by=actor.name,
        imported_at=now,
    )
    db.add(row)
    db.flush()
    record(
        db,
        actor=actor.name,
        source=actor.source,
        action="ca.trust",
        target=row.subject,
        outcome="success",
        detail={"name": name, "fingerprint": fingerprint, "certificates": len(certs)},
    )
    return row


def record_refused_crls(db: Session, refused: list[CrlRollback]) -> None:
    """Audit each company CRL refused for being older than the one held (``ca.crl_rollback``): a replay on the CRL's
    plain-HTTP path, or a CA publishing out of order; either way a person must look."""
    for rollback in refused:
        record(
            db,
            actor="system",
            action="ca.crl_rollback",
            target=rollback.url,
            outcome="refused",
            detail={
                "held_this_update": rollback.held_this_update.isoformat(),
                "held_crl_number": rollback.held_number,
                "offered_this_update": rollback.offered_this_update.isoformat(),
                "offered_crl_number": rollback.offered_number,
            },
        )
