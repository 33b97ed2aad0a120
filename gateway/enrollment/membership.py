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
from sqlmodel import Session, col, or_, select

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

    login: str
    """The login of their latest application, for the audit rows."""
    person_id: str
    """The directory's stable id, by which the person is found after a rename or a move; empty for an application
    from before ids were kept (migration 0008), which is found by ``user_dn``."""
    user_dn: str
    """The entry's DN when the application was approved."""
    member: bool


Wanted = dict[str, Membership]
"""Per managed person (their directory id, or ``login:<login>`` without one): one entry whatever logins their
applications were opened under (a rename between two applications)."""


def nudge_membership(db: Session, login: str) -> None:
    """Ask for ``login``'s membership to be reconciled once this transaction commits (dropped on rollback)."""
    nudge_after_commit(db, MEMBERSHIP_CHANGED, login)


def wanted_memberships(db: Session, logins: Iterable[str] | None = None) -> Wanted:
    """Whether each managed person (or each person an application of ``logins`` names) should be in the group: yes
    while any application of theirs, under any login, is approved. Only people enrollment ever approved are managed.

    A person is their directory id (``person_id``), or their login for an application from before ids were kept:
    keyed by login, a person renamed between two applications, one approved and one suspended, would be removed by
    one entry and added back by the other on every pass."""
    managed = select(Application).where(
        col(Application.approved_at).is_not(None), col(Application.user_dn).is_not(None)
    )
    if logins is not None:
        named = select(Application.person_id).where(
            col(Application.login).in_(list(logins)), col(Application.person_id).is_not(None)
        )
        managed = managed.where(or_(col(Application.login).in_(list(logins)), col(Application.person_id).in_(named)))
    people: dict[str, Membership] = {}
    for application in db.exec(managed.order_by(col(Application.id))).all():
        person = application.person_id or f"login:{application.login}"
        member = application.state is ApplicationState.APPROVED or (person in people and people[person].member)
        people[person] = Membership(application.login, application.person_id or "", application.user_dn or "", member)
    return people


def make_memberships_so(
    engine: Engine, directory: Directory, agent_group: str, wanted: Wanted, now: datetime
) -> dict[str, str]:
    """Add or remove each person so the group matches ``wanted``, outside any transaction; then audit each change
    (or failure) in one unit of work. Idempotent: a person already right is not touched."""
    changes: dict[str, tuple[str, bool, str]] = {}
    for membership in wanted.values():
        outcome, problem = _make_it_so(directory, agent_group, membership)
        if outcome:
            changes[membership.login] = (outcome, membership.member, problem)
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
