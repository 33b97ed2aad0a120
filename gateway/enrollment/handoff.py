"""What an approval hands on, and what taking a seat away undoes: the directory group, voice, certificates, sessions.

Approval adds the person to the SOHO agents group, marks their callback number vetted for voice and opens a
certificate request for the security admins. Rejection or withdrawal after approval, and an HR suspension, remove
the membership, revoke every live certificate of theirs ("affiliationChanged") and end their sessions. Everything
here is written in the caller's transaction; the directory group is changed only after that commits, by the
membership reconciler this step nudges (``membership.py``), so a rolled-back decision leaves the directory untouched.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from certs.authority import Authority
from certs.identity import CertificateIdentity, identity_of
from gateway.audit.service import record
from gateway.db import session_scope
from gateway.directory import Account, Directory, DirectoryUser
from gateway.directory.errors import AccountNotFound, DirectoryError, LoginRefused, MalformedLogin
from gateway.enrollment.errors import DirectoryChangeFailed, InvalidApplication
from gateway.enrollment.membership import nudge_membership
from gateway.enrollment.models import Application, ApplicationState, CertificateRequest, CertificateRequestState
from gateway.errors import NotFound
from gateway.pki import service as pki
from gateway.pki.errors import CaNotReady
from gateway.pki.models import CertificateKind, IssuedCertificate
from gateway.sessions.login import certificate_matches
from gateway.sessions.models import EndReason, HomeSession, SessionState
from gateway.sessions.service import end_sessions
from gateway.voice.numbers import mark_vetted

log = logging.getLogger(__name__)
REVOCATION_REASON = "affiliationChanged"


@dataclass(frozen=True)
class HandOff:
    """What approval and its undoing need from outside the database."""

    directory: Directory
    authority: Authority | None
    crl_validity: timedelta
    agent_group: str


def find_person(directory: Directory, login: str) -> DirectoryUser:
    """The directory's entry for ``login``; an unknown account is the applicant's (or the CSV row's) mistake."""
    try:
        return directory.lookup(login)
    except (AccountNotFound, MalformedLogin):  # no account has it, or none can
        raise InvalidApplication(
            f"{login!r} is not an account in the directory", key="application_unknown_login", login=login
        ) from None
    except DirectoryError as error:
        raise DirectoryChangeFailed(f"the directory could not be read: {error.user_message}") from None


def grant_seat(db: Session, application: Application, handoff: HandOff, *, actor: str, now: datetime) -> None:
    """Voice and certificate request; the group membership follows once the caller commits."""
    person = find_person(handoff.directory, application.user_dn or application.login)
    application.user_dn, application.upn = person.dn, person.upn or application.upn
    application.person_id = person.person_id
    voice = _vet_callback_number(db, application, person.person_id, actor, now)
    db.add(
        CertificateRequest(
            application_id=application.id,
            login=application.login,
            upn=application.upn,
            state=CertificateRequestState.OPEN,
            created_at=now,
        )
    )
    db.flush()
    nudge_membership(db, application.login)
    record(
        db,
        actor=actor,
        action="enrollment.handoff.grant",
        target=application.login,
        outcome="success",
        detail={"application": application.id, "group": handoff.agent_group, "voice": voice},
        clock=lambda: now,
    )


def withdraw_seat(
    db: Session, application: Application, handoff: HandOff, *, actor: str, now: datetime, why: str
) -> None:
    """End sessions, revoke certificates, cancel certificate requests; the person leaves the group once the caller
    commits. Fails closed: a CA that is not ready stops the whole step rather than leaving a certificate valid.
    When the directory cannot say how the person is named now, the certificates of those names that carry no person
    are owed, and the membership pass revokes them once it answers (``finish_owed_revocations``)."""
    found = _live_certificates(db, application, handoff.directory, now)
    certificates = [*found.theirs, *found.of_an_unknown_id]
    if certificates and handoff.authority is None:
        raise CaNotReady(
            "the certificate authority is not ready, so the certificates cannot be revoked; nothing changed"
        )
    # By the person's directory id: a session opened under any spelling of the account ends (by name only for an
    # application from before ids were kept, migration 0008). Every one marked before this transaction's first audit
    # row, in one append, the revocations' after it: a take-over at the person's sign-in holds the row of the
    # session it ends while it waits for the audit chain, and this held the chain from a revocation's audit row and
    # then waited for that row (a deadlock; `test_suspension_beside_a_sign_in.py`).
    person_id, login = application.person_id, application.login
    theirs = HomeSession.person_id == person_id if person_id else HomeSession.login == login
    sessions = db.exec(select(HomeSession).where(theirs, HomeSession.state != SessionState.ENDED)).all()
    endings = [(session, EndReason.HR_SUSPENDED) for session in sessions]
    end_sessions(db, endings, actor=actor, now=now, detail={"enrollment": why})
    _revoke(db, handoff, certificates, actor, now)
    if not found.directory_answered and application.person_id:  # a rename since would hide the new name's ones
        application.revocation_owed_since = now
        db.add(application)
    for request in db.exec(
        select(CertificateRequest).where(
            CertificateRequest.login == application.login, CertificateRequest.state == CertificateRequestState.OPEN
        )
    ):
        request.state, request.closed_at, request.closed_by = CertificateRequestState.CANCELLED, now, actor
        db.add(request)
    db.flush()
    nudge_membership(db, application.login)
    record(
        db,
        actor=actor,
        action="enrollment.handoff.withdraw",
        target=application.login,
        outcome=why,
        detail={
            "application": application.id,
            "group": handoff.agent_group,
            "revoked": [c.serial for c in certificates],
            "spared": [c.serial for c in found.spared],
            "person_id_unknown": [c.serial for c in found.of_an_unknown_id],
            "sessions_ended": len(sessions),
            "directory_answered": found.directory_answered,
        },
        clock=lambda: now,
    )


def finish_owed_revocations(engine: Engine, handoff: HandOff, now: datetime) -> list[str]:
    """What withdrawals made while the directory was down still owe: for each, the person's entry as it is now (by
    their id), and the live agent certificates without a person that a sign-in as them would accept (those bound
    to them were revoked by the withdrawal itself), revoked and audited; nothing when the person was approved again
    meanwhile (their certificates are theirs again). The directory is asked outside any transaction; an application
    stays owed while it does not answer, or while no CA is ready to revoke. Returns the serials revoked."""
    with session_scope(engine) as db:
        owed = db.exec(select(Application).where(col(Application.revocation_owed_since).is_not(None))).all()
    revoked: list[str] = []
    for application in owed:
        unresolved = ""
        try:
            names = [_as_the_directory_has_them(handoff.directory, application)]
        except LoginRefused as refused:  # the directory answered: no such account now (deleted, moved out of base_dn)
            names, unresolved = [], str(refused)
        except DirectoryError as error:
            log.warning("a withdrawal's revocations stay owed for %s: %s", application.login, error)
            continue  # the next pass asks again
        with session_scope(engine) as db:
            current = db.get(Application, application.id, with_for_update=True)
            if current is None or current.revocation_owed_since is None:
                continue  # another node finished it
            approved_again = _approved(db, current)
            certificates, spared = ([], []) if approved_again else _theirs(db, current.person_id, names, now)
            if certificates and handoff.authority is None:
                log.warning("a withdrawal's revocations stay owed for %s: no CA is ready", current.login)
                continue
            _revoke(db, handoff, certificates, "system", now)
            current.revocation_owed_since = None
            db.add(current)
            record(
                db,
                actor="system",
                action="enrollment.handoff.withdraw",
                target=current.login,
                outcome="revocation_unresolved" if unresolved else "revocation_finished",
                detail={
                    "application": current.id,
                    "revoked": [c.serial for c in certificates],
                    "spared": [c.serial for c in spared],
                    "approved_again": approved_again,
                    "unresolved": unresolved,
                },
                clock=lambda: now,
            )
            revoked += [c.serial for c in certificates]
    return revoked


def _approved(db: Session, application: Application) -> bool:
    """Whether any application of the person (by their id, or by login without one) is approved now."""
    person = (
        Application.person_id == application.person_id
        if application.person_id
        else Application.login == application.login
    )
    return (
        db.exec(select(Application.id).where(person, Application.state == ApplicationState.APPROVED)).first()
        is not None
    )


def _revoke(db: Session, handoff: HandOff, certificates: list[IssuedCertificate], actor: str, now: datetime) -> None:
    for certificate in certificates:
        assert handoff.authority is not None
        pki.revoke(
            db,
            handoff.authority,
            certificate.serial,
            REVOCATION_REASON,
            actor=pki.Actor(actor),
            now=now,
            crl_validity=handoff.crl_validity,
        )


@dataclass(frozen=True)
class Found:
    """A withdrawn person's live agent certificates, and whether the directory answered."""

    theirs: list[IssuedCertificate]
    """Bound to their id, or without a person and theirs by name or by their sessions: revoked."""
    spared: list[IssuedCertificate]
    """A name of theirs matches it, but it is bound to, or was signed in with by, someone else: left valid."""
    of_an_unknown_id: list[IssuedCertificate]
    """What would be spared, had the directory not answered that no entry has the person's id any more (deleted,
    perhaps recreated under the same UPN with a new id, or moved out of ``base_dn``): revoked, failing closed, since
    the certificate bound to the new id may be the withdrawn person's own."""
    directory_answered: bool


def _live_certificates(db: Session, application: Application, directory: Directory, now: datetime) -> Found:
    """The person's unrevoked, unexpired agent certificates (``_theirs``), by the names the application knows (its
    UPN and login: the name they applied under) and those of their directory entry now (found by their id, so a
    rename is followed). Only the application's own id finds certificates by id: the entry that owns its login now
    may be someone else's (a login reused since an application from before 0008), so an application without an id
    is matched by names alone. When the directory does not answer, or no longer knows the account, the withdrawal
    still takes effect with what is known without it: the certificates bound to the person, and the group
    membership and the certificates of their current names go once the directory is back."""
    names = [_as_applied(application)]  # certificates issued under the name they applied with, renamed since or not
    id_unknown = False
    try:
        names.append(_as_the_directory_has_them(directory, application))
        answered = True
    except AccountNotFound:  # no such account (any more): the directory answered
        answered, id_unknown = True, bool(application.person_id)
    except LoginRefused:  # no name the directory takes: it answered
        answered = True
    except DirectoryError:
        answered = False
    theirs, spared = _theirs(db, application.person_id, names, now)
    if id_unknown:
        return Found(theirs, [], spared, answered)
    return Found(theirs, spared, [], answered)


def _theirs(
    db: Session, person_id: str | None, names: list[Account], now: datetime
) -> tuple[list[IssuedCertificate], list[IssuedCertificate]]:
    """Which live agent certificates are the person's, and which a name of theirs matches that are someone else's.
    Bound to a person at issuance (``person_id``): theirs if it is them, whatever names anyone carries now. Issued
    before certificates were bound (NULL): theirs if their sessions signed in with it, or if a sign-in as any of
    ``names`` would accept it (``certificate_matches``: the UPN, AD's implicit UPN, the DN, the name) unless someone
    else's sessions signed in with it. Whatever a name matches that is not theirs is spared: a UPN passed from one
    person to another, or taken. Without an id for the person (an application from before ids were kept), only
    names are left: every certificate they match is theirs, as before ids."""
    live = db.exec(
        select(IssuedCertificate)
        .where(IssuedCertificate.kind == CertificateKind.AGENT)
        .where(col(IssuedCertificate.revoked_at).is_(None))
        .where(col(IssuedCertificate.not_after) > now)
    ).all()
    signers = _signers(db, now)
    theirs: list[IssuedCertificate] = []
    spared: list[IssuedCertificate] = []
    for certificate in live:
        owners = (
            {certificate.person_id} if certificate.person_id else signers.get(certificate.fingerprint_sha256, set())
        )
        if person_id and person_id in owners:
            theirs.append(certificate)
        elif _matches_any(identity_of(x509.load_pem_x509_certificate(certificate.pem.encode())), names):
            (spared if person_id and owners else theirs).append(certificate)
    return theirs, spared


def _signers(db: Session, now: datetime) -> dict[str, set[str]]:
    """For each live agent certificate without a person that sessions signed in with (by fingerprint): the people
    those sessions were. Sessions 0008 could not give a person (``legacy:``) say nothing of whose it is."""
    rows = db.exec(
        select(HomeSession.cert_fingerprint, HomeSession.person_id)
        .distinct()
        .join(IssuedCertificate, col(IssuedCertificate.fingerprint_sha256) == col(HomeSession.cert_fingerprint))
        .where(IssuedCertificate.kind == CertificateKind.AGENT)
        .where(col(IssuedCertificate.person_id).is_(None))
        .where(col(IssuedCertificate.revoked_at).is_(None))
        .where(col(IssuedCertificate.not_after) > now)
        .where(col(HomeSession.person_id).not_like("legacy:%"))  # gateway.adoption.LEGACY_PREFIX, a layer above
    ).all()
    signers: dict[str, set[str]] = {}
    for fingerprint, person in rows:
        if fingerprint is not None:
            signers.setdefault(fingerprint, set()).add(person)
    return signers


def _matches_any(identity: CertificateIdentity, names: list[Account]) -> bool:
    return any(certificate_matches(identity, name) for name in names)


def _as_the_directory_has_them(directory: Directory, application: Application) -> Account:
    """The person's entry now: by their directory id, so a rename since the application (new account name, UPN, DN)
    is followed; by the login for an application from before ids were kept (migration 0008)."""
    if not application.person_id:
        return directory.find_account(application.login)
    return directory.lookup_person(application.person_id).account()


def _as_applied(application: Application) -> Account:
    """The person as their application names them, for matching certificates without the directory."""
    return Account(person_id=application.person_id or "", dn="", name=application.login, upn=application.upn or None)


def _vet_callback_number(db: Session, application: Application, person_id: str, actor: str, now: datetime) -> str:
    """Mark the number vetted in voice's registry; if the agent has not registered it there yet, it stays on the
    application (``vetted_number``) for voice to find."""
    if not application.callback_e164:
        return "none"
    try:
        mark_vetted(db, person_id, application.callback_e164, actor, now)
    except NotFound:
        return "not_registered"
    return "vetted"
