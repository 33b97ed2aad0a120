"""Adopting rows written before sessions were keyed by person (migration 0008) at the person's next sign-in.

Such rows carry ``legacy:<name as typed>``. A row is the person's when that name, folded as AD folds names
(``throttle.account_key``: domain prefix and UPN suffix dropped, case ignored), is one of the person's own names
(account name, sAMAccountName, UPN). Of several legacy TOTP secrets (one per spelling, the very flaw 0008 closes)
the one confirmed first is kept and the others are deleted: a later one may be an attacker's. Legacy live sessions
take the person's id, so the one-live-session rule and suspensions reach them. Each adoption is audited.
"""

from datetime import datetime

from sqlmodel import Session, col, select

from gateway.audit.service import record
from gateway.directory import DirectoryUser
from gateway.sessions.models import HomeSession, SessionState, TotpSecret
from gateway.sessions.throttle import account_key

LEGACY_PREFIX = "legacy:"


def _names(user: DirectoryUser) -> set[str]:
    return {account_key(name) for name in (user.login, user.sam_account_name, user.upn) if name}


def _theirs(legacy_id: str, names: set[str]) -> bool:
    return account_key(legacy_id.removeprefix(LEGACY_PREFIX)) in names


def adopt_legacy_rows(db: Session, session: HomeSession, user: DirectoryUser, now: datetime) -> None:
    """Give the person their pre-0008 TOTP secret and live sessions; a no-op once nothing legacy is left."""
    names = _names(user)
    legacy_secrets = [
        s
        for s in db.exec(select(TotpSecret).where(col(TotpSecret.person_id).startswith(LEGACY_PREFIX))).all()
        if _theirs(s.person_id, names)
    ]
    legacy_sessions = [
        s
        for s in db.exec(
            select(HomeSession).where(
                col(HomeSession.person_id).startswith(LEGACY_PREFIX), HomeSession.state != SessionState.ENDED
            )
        ).all()
        if _theirs(s.person_id, names)
    ]
    if not legacy_secrets and not legacy_sessions:
        return
    kept = None
    if db.get(TotpSecret, user.person_id) is None and legacy_secrets:
        oldest = min(legacy_secrets, key=lambda s: (s.confirmed_at is None, s.confirmed_at or s.created_at))
        kept = TotpSecret(
            person_id=user.person_id,
            login=user.login,
            secret=oldest.secret,
            created_at=oldest.created_at,
            confirmed_at=oldest.confirmed_at,
            last_used_step=oldest.last_used_step,
        )
    for secret in legacy_secrets:
        db.delete(secret)
    db.flush()
    if kept is not None:
        db.add(kept)
    for legacy in legacy_sessions:
        legacy.person_id = user.person_id
        db.add(legacy)
    db.flush()
    record(
        db,
        actor=user.login,
        source=session.source_ip,
        action="session.adopt_legacy",
        target=session.id,
        outcome="adopted",
        detail={
            "person": user.person_id,
            "totp_secrets": [s.person_id for s in legacy_secrets],
            "kept_secret_confirmed": kept.confirmed_at if kept else None,
            "sessions": [s.id for s in legacy_sessions],
        },
        clock=lambda: now,
    )
