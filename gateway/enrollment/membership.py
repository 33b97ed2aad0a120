"""The SOHO agents group, made to match the applications: a person with an approved application is a member, a
person whose approval was taken back (rejected, withdrawn, suspended) is not.

The directory is outside the database transaction, so it is never changed inside one: a decision nudges this
reconciler (``MEMBERSHIP_CHANGED``) and the group is changed only once the decision has committed. A rolled-back
decision leaves the directory as it was. The scheduled pass (``jobs.py``) repairs what a failed nudge, a directory
outage or a hand edit left behind. Only people enrollment ever approved are managed: anyone else in the group was put
there by someone else and is left alone.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine
from sqlmodel import Session, col, select

from gateway.audit.service import record
from gateway.clock import utcnow
from gateway.directory import Directory
from gateway.directory.errors import AccountNotFound, DirectoryError
from gateway.enrollment.models import Application, ApplicationState
from gateway.events import listen, nudge_after_commit

log = logging.getLogger(__name__)
MEMBERSHIP_CHANGED = "enrollment.membership"


@dataclass(frozen=True)
class MembershipNudge:
    """Who to reconcile after the commit, and the directory and group the decision's hand-off named."""

    bind: Engine | Connection
    directory: Directory
    agent_group: str
    login: str


def nudge_membership(db: Session, directory: Directory, agent_group: str, login: str) -> None:
    """Ask for ``login``'s membership to be reconciled once this transaction commits (dropped on rollback)."""
    nudge_after_commit(db, MEMBERSHIP_CHANGED, MembershipNudge(db.get_bind(), directory, agent_group, login))


def reconcile_memberships(
    db: Session, directory: Directory, agent_group: str, now: datetime, logins: Iterable[str] | None = None
) -> dict[str, str]:
    """Add or remove each managed person (or only ``logins``) so the group matches their applications; returns
    what changed or failed per login. Idempotent: a person already right is not touched. Each change is audited."""
    query = select(Application).where(col(Application.approved_at).is_not(None), col(Application.user_dn).is_not(None))
    if logins is not None:
        query = query.where(col(Application.login).in_(list(logins)))
    wanted: dict[str, tuple[str, bool]] = {}
    for application in db.exec(query.order_by(col(Application.id))).all():
        approved = application.state is ApplicationState.APPROVED
        _, already = wanted.get(application.login, ("", False))
        wanted[application.login] = (application.user_dn or "", already or approved)
    changes: dict[str, str] = {}
    for login, (user_dn, member) in wanted.items():
        outcome, problem = _make_it_so(directory, agent_group, user_dn, member)
        if outcome:
            changes[login] = outcome
            record(
                db,
                actor="system",
                action="enrollment.membership",
                target=login,
                outcome=outcome,
                detail={"group": agent_group, "member": member, "problem": problem},
                clock=lambda: now,
            )
    db.flush()
    return changes


def _make_it_so(directory: Directory, agent_group: str, user_dn: str, member: bool) -> tuple[str, str]:
    """("added" | "removed" | "" when already right | "failed", the directory's complaint); a failure is left
    for the next pass. A person deleted from the directory is nobody's member any more: nothing to do."""
    try:
        groups = {group.dn.casefold() for group in directory.lookup(user_dn).groups}
        if (agent_group.casefold() in groups) == member:
            return "", ""
        if member:
            directory.add_to_group(user_dn, agent_group)
            return "added", ""
        directory.remove_from_group(user_dn, agent_group)
        return "removed", ""
    except AccountNotFound:
        return "", ""
    except DirectoryError as error:
        log.warning("could not reconcile %s in %s: %s", user_dn, agent_group, error)
        return "failed", str(error)


def _on_nudge(_topic: str, nudge: Any) -> None:
    """Runs after the decision's commit, in a transaction of its own for the audit rows."""
    assert isinstance(nudge, MembershipNudge)
    with Session(nudge.bind, expire_on_commit=False) as db:
        reconcile_memberships(db, nudge.directory, nudge.agent_group, utcnow(), [nudge.login])
        db.commit()


listen(MEMBERSHIP_CHANGED, _on_nudge)
