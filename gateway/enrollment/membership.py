"""The SOHO agents group, made to match the applications: a person with an approved application is a member, a
person whose approval was taken back (rejected, withdrawn, suspended) is not.

The directory is outside the database transaction, so it is never changed inside one: a decision nudges the
``enrollment.membership`` worker (``MEMBERSHIP_CHANGED``, ``workers.py``), whose pass changes the group in its own
thread once the decision has committed. A rolled-back decision leaves the directory as it was. The interval pass
repairs what a failed nudge, a directory outage or a hand edit left behind. Only people enrollment ever approved are
managed: anyone else in the group was put there by someone else and is left alone.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from gateway.audit.service import record
from gateway.db import session_scope
from gateway.directory import Directory
from gateway.directory.errors import AccountNotFound, DirectoryError
from gateway.enrollment.models import Application, ApplicationState
from gateway.events import nudge_after_commit

log = logging.getLogger(__name__)
MEMBERSHIP_CHANGED = "enrollment.membership"
"""Nudged after a decision commits; the payload is the login whose membership to reconcile."""


@dataclass(frozen=True)
class Membership:
    """One managed person: who they are in the directory, and whether they should be in the group."""

    person_id: str
    """The directory's stable id, by which the person is found after a rename or a move; empty for an application
    from before ids were kept (migration 0008), which is found by ``user_dn``."""
    user_dn: str
    """The entry's DN when the application was approved."""
    member: bool


Wanted = dict[str, Membership]
"""Per managed login (as the application names it)."""


def nudge_membership(db: Session, login: str) -> None:
    """Ask for ``login``'s membership to be reconciled once this transaction commits (dropped on rollback)."""
    nudge_after_commit(db, MEMBERSHIP_CHANGED, login)


def wanted_memberships(db: Session, logins: Iterable[str] | None = None) -> Wanted:
    """Whether each managed person (or each of ``logins``) should be in the group: yes while any application of
    theirs is approved. Only people enrollment ever approved are managed."""
    query = select(Application).where(col(Application.approved_at).is_not(None), col(Application.user_dn).is_not(None))
    if logins is not None:
        query = query.where(col(Application.login).in_(list(logins)))
    wanted: Wanted = {}
    for application in db.exec(query.order_by(col(Application.id))).all():
        approved = application.state is ApplicationState.APPROVED
        already = application.login in wanted and wanted[application.login].member
        person_id, user_dn = application.person_id or "", application.user_dn or ""
        wanted[application.login] = Membership(person_id, user_dn, already or approved)
    return wanted


def make_memberships_so(
    engine: Engine, directory: Directory, agent_group: str, wanted: Wanted, now: datetime
) -> dict[str, str]:
    """Add or remove each person so the group matches ``wanted``, outside any transaction; then audit each change
    (or failure) in one unit of work. Idempotent: a person already right is not touched."""
    changes: dict[str, tuple[str, bool, str]] = {}
    for login, membership in wanted.items():
        outcome, problem = _make_it_so(directory, agent_group, membership)
        if outcome:
            changes[login] = (outcome, membership.member, problem)
    if changes:
        with session_scope(engine) as db:
            for login, (outcome, member, problem) in changes.items():
                record(
                    db,
                    actor="system",
                    action="enrollment.membership",
                    target=login,
                    outcome=outcome,
                    detail={"group": agent_group, "member": member, "problem": problem},
                    clock=lambda: now,
                )
    return {login: outcome for login, (outcome, _, _) in changes.items()}


def _make_it_so(directory: Directory, agent_group: str, wanted: Membership) -> tuple[str, str]:
    """("added" | "removed" | "" when already right | "failed", the directory's complaint); a failure is left
    for the next pass. The person is found by their id, so a rename or a move (a new DN) still leaves the group when
    their approval is taken back. A person deleted from the directory is nobody's member any more: nothing to do."""
    try:
        person = directory.lookup_person(wanted.person_id) if wanted.person_id else directory.lookup(wanted.user_dn)
        groups = {group.dn.casefold() for group in person.groups}
        if (agent_group.casefold() in groups) == wanted.member:
            return "", ""
        if wanted.member:
            directory.add_to_group(person.dn, agent_group)
            return "added", ""
        directory.remove_from_group(person.dn, agent_group)
        return "removed", ""
    except AccountNotFound:
        return "", ""
    except DirectoryError as error:
        log.warning("could not reconcile %s in %s: %s", wanted.user_dn, agent_group, error)
        return "failed", str(error)
