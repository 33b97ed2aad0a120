"""Directory changes in seconds: which live sessions a changed entry touches, what to watch, and how a lost
subscription is reported.

The directory's subscription (``gateway/directory/watch.py``) names the changed entries by DN and stable id; a
session is touched when its person, its account's DN or the DN of a group its policy was evaluated with (nesting
resolved at sign-in) is among them. Only
those sessions are re-validated, by the same code as the poll (``revalidation.revalidate``), which stays as the
safety net for what no notification carries: time passing (an account or password expiring on its own, logon
hours), a change missed in the instant a subscription is re-registered, and a built-in directory's file.
"""

import logging

from ldap3.utils.dn import parse_dn
from sqlalchemy import Engine
from sqlmodel import Session

from gateway.audit.service import record
from gateway.db import session_scope
from gateway.directory.logins import is_dn, normalized_dn
from gateway.directory.watch import StatusReport
from gateway.sessions.models import HomeSession
from gateway.sessions.service import live_sessions, policy_groups

log = logging.getLogger(__name__)

SUBSCRIPTION_AUDIT_ACTION = "directory.subscription"


def _entry_dns(session: HomeSession) -> list[str]:
    """The account's DN and the DNs among the policy's group identifiers (AD also lists SIDs there)."""
    return [session.user_dn, *(g for g in policy_groups(session) if is_dn(g))]


def _container(dn: str) -> str | None:
    """The DN one level up (RDN values stay escaped as parse_dn returns them), or None for a top-level DN."""
    parts = parse_dn(dn)
    return ",".join(f"{attr}={value}" for attr, value, _sep in parts[1:]) or None


def watched_containers(engine: Engine) -> frozenset[str]:
    """The containers whose children must be watched: those of the live sessions' accounts and groups."""
    with session_scope(engine) as db:
        sessions = live_sessions(db)
    containers = (_container(dn) for s in sessions for dn in _entry_dns(s))
    return frozenset(c for c in containers if c)


def touched_sessions(db: Session, changed: frozenset[str] | None) -> list[str]:
    """Ids of the live sessions whose person, account or groups are among the changed entries (DNs and person
    ids); every one for ``None`` ("anything may have changed", after a subscription was restored)."""
    sessions = live_sessions(db)
    if changed is None:
        return [s.id for s in sessions]
    folded = {normalized_dn(name) for name in changed if is_dn(name)}
    return [
        s.id for s in sessions if s.person_id in changed or any(normalized_dn(dn) in folded for dn in _entry_dns(s))
    ]


def subscription_reporter(engine: Engine, node: str) -> StatusReport:
    """Log every loss and restoration of the subscription and audit each once (``directory.subscription``,
    outcome ``lost`` or ``restored``); ``/metrics`` counts these rows."""

    def report(up: bool, detail: str) -> None:
        if up:
            log.info("directory subscription restored: %s", detail)
        else:
            log.warning("directory subscription lost, sessions rely on the poll until it is back: %s", detail)
        with session_scope(engine) as db:
            record(
                db,
                actor="system",
                action=SUBSCRIPTION_AUDIT_ACTION,
                outcome="restored" if up else "lost",
                detail={"detail": detail, "node": node},
            )

    return report
