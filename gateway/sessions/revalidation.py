"""Re-check every live session against the directory and the CA, and end the ones that lost their right.

Runs on a schedule (default every 30 s), and for the sessions a directory change touched as soon as the
directory's subscription reports it (``directory_changes.py``). A disabled, locked, expired or removed account, a
role taken away, a second factor the policy now asks of a session signed in without one, a revoked or expired
certificate: each ends the session through ``end_session`` with its own reason. A session that keeps its roles
takes on the groups just read when they changed (``follow_groups``), so what the policy grants by group follows
the directory. When the directory cannot be reached the sessions are kept (reported and audited once per run):
ending every home seat because a domain controller rebooted would cost the service level more than a 30-second
window of doubt.

A certificate whose revocation status cannot be established (its CRL/OCSP server unreachable and no current CRL
held) is a doubt with a limit, ``portal.revocation_unknown_grace_minutes``: the session is kept but not confirmed
(``last_checked_at`` stays at its last good check), and once that check is older than the grace the session ends
as ``certificate_status_unknown``. Fail closed, after a grace an operator chose.

Without a directory (``directory=None``) only the certificates are checked: the pass the company-CRL job runs the
moment a CRL changed, and ``sohogw ca refresh``.
"""

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from cryptography import x509
from sqlalchemy import Engine, update
from sqlmodel import Session, col

from certs.authority import Authority
from certs.errors import CertificateError, CertificateRevokedError, RevocationUnknown
from certs.revocation import HttpRevocationChecker
from gateway.audit.service import record
from gateway.clock import as_utc
from gateway.db import session_scope
from gateway.directory import Directory, DirectoryUser, group_identifiers
from gateway.directory.errors import AccountDisabled, AccountLocked, AccountNotFound, DirectoryUnavailable
from gateway.pki.trust import verify_client
from gateway.policies.service import current_policy
from gateway.sessions.models import EndReason, HomeSession, SessionState
from gateway.sessions.service import end_session, follow_groups, groups_changed, live_sessions
from policy import EffectivePolicy, evaluate

log = logging.getLogger(__name__)

_STATE_REASONS = {AccountDisabled: EndReason.ACCOUNT_DISABLED, AccountLocked: EndReason.ACCOUNT_LOCKED}


@dataclass(frozen=True)
class RevalidationReport:
    checked: int
    ended: int
    directory_unavailable: bool = False


def _account_problem(user: DirectoryUser) -> EndReason | None:
    refusal = user.refusal()
    if refusal is None:
        return None
    return _STATE_REASONS.get(type(refusal), EndReason.ACCOUNT_STATE)


class Doubt(Enum):
    """Neither end nor confirm: the session is kept, its last good check stays where it was."""

    REVOCATION_UNKNOWN = "revocation_unknown"


Verdict = EndReason | Doubt | None


def _certificate_problem(
    db: Session,
    session: HomeSession,
    authority: Authority | None,
    remote: HttpRevocationChecker,
    now: datetime,
    unknown_grace: timedelta,
) -> Verdict:
    """Re-verify the login certificate; an unknown revocation status is a doubt until the grace runs out."""
    if session.cert_pem is None:
        return None
    if session.cert_not_after is not None and now >= as_utc(session.cert_not_after):
        return EndReason.CERTIFICATE_EXPIRED
    if authority is None:
        return None
    try:
        verify_client(db, authority, x509.load_pem_x509_certificate(session.cert_pem.encode()), now, remote)
    except CertificateRevokedError:
        return EndReason.CERTIFICATE_REVOKED
    except RevocationUnknown as error:
        if now - as_utc(session.last_checked_at) >= unknown_grace:
            return EndReason.CERTIFICATE_STATUS_UNKNOWN
        log.warning("revocation status of %s unknown, session kept within the grace: %s", session.login, error)
        return Doubt.REVOCATION_UNKNOWN
    except CertificateError:
        return EndReason.CERTIFICATE_REVOKED  # no longer trusted at all (e.g. its company CA was removed)
    return None


def _policy_problem(session: HomeSession, effective: EffectivePolicy) -> EndReason | None:
    """What the policy in force, evaluated for the groups just read, no longer lets the session keep: a role it was
    granted, or a sign-in without the second factor once one is asked (the policy changed, or the person joined a
    group whose role asks it). Ended rather than sent back to wait for the code: ``end_session`` is the one way a
    session gives up its tunnel, seat and call leg, and the next sign-in asks for the code."""
    if not session.role_set <= effective.roles:
        return EndReason.ROLE_REMOVED
    if effective.require_totp and not session.second_factor:
        return EndReason.SECOND_FACTOR_REQUIRED
    return None


def _reason_to_end(
    engine: Engine,
    session: HomeSession,
    directory: Directory | None,
    authority: Authority | None,
    remote: HttpRevocationChecker,
    now: datetime,
    unknown_grace: timedelta,
) -> tuple[Verdict, DirectoryUser | None]:
    """Why this session must end, a doubt, or None; with the directory's entry when it was read. Runs outside any
    write transaction: it waits on LDAP and HTTP."""
    with Session(engine) as db:
        reason = _certificate_problem(db, session, authority, remote, now, unknown_grace)
        if reason is not None or directory is None:
            return reason, None
        document = current_policy(db)
    try:
        user = directory.lookup(session.user_dn)
    except AccountNotFound:
        return EndReason.ACCOUNT_GONE, None
    reason = _account_problem(user)
    if reason is None:
        reason = _policy_problem(session, evaluate(document, group_identifiers(user.groups), now))
    return reason, user


def _follow_groups(engine: Engine, session: HomeSession, user: DirectoryUser) -> None:
    """Store the groups just read when they differ from the session's (its role kept: a role taken away ends it)."""
    names, identifiers = [g.name for g in user.groups], group_identifiers(user.groups)
    if not groups_changed(session, names, identifiers):
        return  # the usual case, decided without a write transaction
    with session_scope(engine) as db:
        current = db.get(HomeSession, session.id, with_for_update=True)  # another node may follow them at once
        if current is not None and current.state is SessionState.ACTIVE:
            follow_groups(db, current, names, identifiers)


def revalidate(
    engine: Engine,
    directory: Directory | None,
    authority: Authority | None,
    remote: HttpRevocationChecker,
    now: datetime,
    unknown_grace: timedelta = timedelta(minutes=15),
    only: Collection[str] | None = None,
) -> RevalidationReport:
    """Check every live session (or those of them whose ids are in ``only``: the ones a directory change touched);
    each ending is its own short transaction, so no lock is held while the directory or a CRL/OCSP server is asked,
    and one failure cannot roll back the endings already decided. Without a ``directory`` only certificates are
    checked, and no session counts as confirmed."""
    with session_scope(engine) as db:
        sessions = [s for s in live_sessions(db) if only is None or s.id in only]
    ended, confirmed = 0, []
    for session in sessions:
        try:
            reason, user = _reason_to_end(engine, session, directory, authority, remote, now, unknown_grace)
        except DirectoryUnavailable as error:
            log.warning("re-validation skipped: %s", error)
            with session_scope(engine) as db:
                record(
                    db,
                    actor="system",
                    action="session.revalidate",
                    outcome="directory_unavailable",
                    detail={"problem": str(error), "sessions": len(sessions)},
                )
            return RevalidationReport(len(sessions), ended, directory_unavailable=True)
        if reason is None and directory is not None:
            confirmed.append(session.id)
        if reason is None and user is not None:
            _follow_groups(engine, session, user)
        if not isinstance(reason, EndReason):
            continue
        with session_scope(engine) as db:
            # Locked: another node's poll or subscription may be ending the same session (PostgreSQL waits here,
            # then sees it ended, and end_session writes nothing twice).
            current = db.get(HomeSession, session.id, with_for_update=True)
            if current is not None:
                end_session(db, current, reason, actor="revalidation", now=now)
                ended += 1
    if confirmed:
        with session_scope(engine) as db:
            db.execute(update(HomeSession).where(col(HomeSession.id).in_(confirmed)).values(last_checked_at=now))
    return RevalidationReport(len(sessions), ended)
