"""Re-check every live session against the directory and the CA, and end the ones that lost their right.

Runs on a schedule (default every 30 s), and for the sessions a directory change touched as soon as the
directory's subscription reports it (``directory_changes.py``). A disabled, locked, expired or removed account, a
role taken away, a second factor the policy now asks of a session signed in without one, a revoked or expired
certificate: each ends the session through ``end_session`` with its own reason. A session that keeps its roles
takes on the groups just read when they changed (``follow_groups``), so what the policy grants by group follows
the directory. When the directory cannot be reached the sessions are kept (reported and audited once per run):
ending every home seat because a domain controller rebooted would cost the service level more than a 30-second
window of doubt. The policy's own verdict is not part of that doubt: it needs only the policy and the groups the
session stores, so the sessions the directory could not be asked about still go through ``apply_policy``; a login
flood that keeps the connection pool busy, or a DC outage, shields no session from a second factor just asked.

An imported policy (``policy.changed``) first picks, by the stored groups alone, the sessions it would end
(``policy_candidates``: no directory, no CA, no write), then re-validates just those in full: stored groups lag the
directory (a join reaches them only at the next poll), so a person just added to the group the new policy keys a
role on is kept by the groups read fresh. With the directory down the stored groups decide, as above.

A certificate whose revocation status cannot be established (its CRL/OCSP server unreachable and no current CRL
held) is a doubt with a limit, ``portal.revocation_unknown_grace_minutes``: the session is kept but not confirmed
(``last_checked_at`` stays at its last good check), and once that check is older than the grace the session ends
as ``certificate_status_unknown``. Fail closed, after a grace an operator chose.

Without a directory (``directory=None``) only the certificates are checked: the pass the company-CRL job runs the
moment a CRL changed, and ``sohogw ca refresh``.
"""

import logging
from collections.abc import Collection, Iterable
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
from gateway.sessions.service import end_session, follow_groups, groups_changed, live_sessions, policy_groups
from policy import EffectivePolicy, PolicyDocument, evaluate

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
    """What the policy in force, evaluated for the groups just read (or those stored: ``apply_policy``), no longer
    lets the session keep: a role it was granted, or a sign-in without the second factor once one is asked (the
    policy changed, or the person joined a group whose role asks it). Ended rather than sent back to wait for the
    code: ``end_session`` is the one way a session gives up its tunnel, seat and call leg, and the next sign-in asks
    for the code."""
    if not session.role_set <= effective.roles:
        return EndReason.ROLE_REMOVED
    if effective.require_totp and not session.second_factor:
        return EndReason.SECOND_FACTOR_REQUIRED
    return None


class PolicyCheck:
    """The policy's verdict on sessions by their stored groups; sessions share a handful of group sets, each
    evaluated once per pass."""

    def __init__(self, document: PolicyDocument, now: datetime) -> None:
        self.document, self.now = document, now
        self._effective: dict[frozenset[str], EffectivePolicy] = {}

    def __call__(self, session: HomeSession) -> EndReason | None:
        groups = frozenset(policy_groups(session))
        if groups not in self._effective:
            self._effective[groups] = evaluate(self.document, groups, self.now)
        return _policy_problem(session, self._effective[groups])


def _end(engine: Engine, session_id: str, now: datetime, reason: EndReason | PolicyCheck) -> int:
    """End the session in its own short transaction, its row locked; 1 if it was live as read (for the report's
    count; SQLite takes no row lock, and two passes there may both count it). Locked: another node's poll,
    subscription or policy pass may be ending the same session (PostgreSQL waits here, then sees it ended); either
    way ``end_session`` writes one ending. A ``PolicyCheck`` judges the locked row again."""
    with session_scope(engine) as db:
        current = db.get(HomeSession, session_id, with_for_update=True)
        if current is None or current.state is not SessionState.ACTIVE:
            return 0
        verdict = reason if isinstance(reason, EndReason) else reason(current)
        if verdict is None:
            return 0
        end_session(db, current, verdict, actor="revalidation", now=now)
        return 1


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
    for index, session in enumerate(sessions):
        try:
            reason, user = _reason_to_end(engine, session, directory, authority, remote, now, unknown_grace)
        except DirectoryUnavailable as error:
            log.warning("re-validation by the directory skipped, the policy applied by stored groups: %s", error)
            with session_scope(engine) as db:
                record(
                    db,
                    actor="system",
                    action="session.revalidate",
                    outcome="directory_unavailable",
                    detail={"problem": str(error), "sessions": len(sessions)},
                )
            policy = apply_policy(engine, now, only=[s.id for s in sessions[index:]])
            return RevalidationReport(len(sessions), ended + policy.ended, directory_unavailable=True)
        if reason is None and directory is not None:
            confirmed.append(session.id)
        if reason is None and user is not None:
            _follow_groups(engine, session, user)
        if isinstance(reason, EndReason):
            ended += _end(engine, session.id, now, reason)
    if confirmed:
        with session_scope(engine) as db:
            db.execute(update(HomeSession).where(col(HomeSession.id).in_(confirmed)).values(last_checked_at=now))
    return RevalidationReport(len(sessions), ended)


def policy_candidates(engine: Engine, now: datetime) -> list[str]:
    """The ids of the live sessions the policy in force would end judged by the groups they store: what an imported
    policy's ``policy.changed`` nudge hands to ``revalidate(only=...)`` on every node that hears it. It only picks:
    stored groups lag the directory (a join reaches them at the next poll), so ending on them alone would end a
    supervisor just added to the group the new policy keys the role on. Costs one read of the live sessions and an
    evaluation per distinct group set, no directory: the usual import, which ends nobody, asks no directory at all."""
    with session_scope(engine) as db:
        check = PolicyCheck(current_policy(db), now)
        return [s.id for s in live_sessions(db) if check(s) is not None]


def apply_policy(engine: Engine, now: datetime, only: Iterable[str] | None = None) -> RevalidationReport:
    """End the live sessions (or those whose ids are in ``only``) the policy in force no longer lets keep their
    right, judged by the groups each session stores (what its policy was evaluated with at sign-in, refreshed by
    every full re-validation): a role taken away, a second factor asked of a session signed in without one. Asks
    neither the directory nor a CA: ``revalidate`` runs it for the sessions an unavailable directory could not be
    asked about, so an outage shields no session from the policy. The price: while the directory is down, a group
    joined since the groups were last stored is not seen, and the old groups decide.

    Every node may run it at once for the same sessions; each ending locks its row and asks the locked row again
    (another node's full pass may have just stored new groups that keep the role), so two nodes ending the same
    session write one ending. Nothing is confirmed (``last_checked_at`` is the full re-validation's)."""
    chosen = None if only is None else set(only)
    with session_scope(engine) as db:
        check = PolicyCheck(current_policy(db), now)
        sessions = [s for s in live_sessions(db) if chosen is None or s.id in chosen]
    ended = 0
    for session in sessions:
        reason = check(session)
        if reason is not None:
            ended += _end(engine, session.id, now, check)
    return RevalidationReport(len(sessions), ended)
