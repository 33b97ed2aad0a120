"""The agents group follows the applications only after the decision commits (the ``enrollment.membership`` worker's
nudged pass), and its interval pass repairs what was changed by hand; against the built-in directory (fast) and the
real Samba AD DC (e2e)."""

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ldap3 import MODIFY_REPLACE
from sqlalchemy import Engine, event
from sqlmodel import Session, col, select

from gateway.audit.models import AuditEvent
from gateway.db import make_engine, session_scope
from gateway.directory import Directory, open_directory
from gateway.enrollment import decisions, service
from gateway.enrollment.membership import wanted_memberships
from gateway.enrollment.models import Application, ApplicationState, DecisionOutcome
from gateway.enrollment.workers import GroupMembership
from gateway.errors import Conflict
from tests.directory.samba import SambaDC, group_dn, user_dn
from tests.gateway.enrollment.conftest import PHONE, Portal, running_portal, wait_for
from tests.gateway.enrollment.test_samba_handoff import person_and_group  # noqa: F401  (fixture)
from tests.support.sqlite import copy_sqlite
from tests.support.workers import one_pass


class CommitRefused(Exception):
    """The database refused the commit (raised from ``before_commit``, as a lost connection would be)."""


def _refuse_commit(db: Session) -> None:
    def refuse(_session: Session) -> None:
        raise CommitRefused("the database went away")

    event.listen(db, "before_commit", refuse)


def _approve(db: Session, portal: Portal, login: str) -> Application:
    settings = portal.settings.enrollment
    application = service.start_application(
        db, portal.handoff(), login, callback_number=PHONE, settings=settings, actor="hr1", now=datetime.now(UTC)
    )
    for stage in settings.stages[:-1]:
        decisions.decide(
            db,
            application,
            stage,
            DecisionOutcome.PASSED,
            "ok",
            handoff=portal.handoff(),
            settings=settings,
            actor="hr1",
            now=datetime.now(UTC),
        )
    assert application.state is ApplicationState.APPROVED
    return application


def _suspend(db: Session, portal: Portal, application: Application) -> None:
    decisions.close(
        db,
        application,
        ApplicationState.SUSPENDED,
        "left the company",
        handoff=portal.handoff(),
        actor="hr1",
        now=datetime.now(UTC),
    )


def _in_group(directory: Directory, login_or_dn: str, group: str) -> bool:
    return group.casefold() in {g.dn.casefold() for g in directory.lookup(login_or_dn).groups}


def _repair(portal: Portal) -> None:
    """One interval pass of the membership worker (every managed person)."""
    worker = GroupMembership(portal.engine, portal.handoff(), portal.settings.enrollment, lambda: datetime.now(UTC))
    one_pass(portal.engine, worker)


def _last_membership_outcome(portal: Portal, login: str) -> str | None:
    """The outcome of the newest ``enrollment.membership`` audit row about ``login`` (by the chain's order)."""
    with session_scope(portal.engine) as db:
        query = select(AuditEvent.outcome).where(AuditEvent.action == "enrollment.membership")
        return db.exec(query.where(AuditEvent.target == login).order_by(col(AuditEvent.seq).desc())).first()


def _becomes(portal: Portal, login: str, member: bool, group: str = "SOHO-Agents") -> None:
    """Waits for the membership worker's nudged pass (it runs in its own thread after the commit)."""
    wait_for(lambda: _in_group(portal.directory, login, group) == member)


def test_an_approval_whose_commit_fails_leaves_the_directory_and_the_database_unchanged(portal: Portal) -> None:
    with pytest.raises(CommitRefused), session_scope(portal.engine) as db:
        _refuse_commit(db)
        _approve(db, portal, "applicant1")
        assert not _in_group(portal.directory, "applicant1", "SOHO-Agents"), "changed before the commit"
    assert not _in_group(portal.directory, "applicant1", "SOHO-Agents")
    with session_scope(portal.engine) as db:
        assert db.exec(select(Application)).all() == []
    with session_scope(portal.engine) as db:
        _approve(db, portal, "applicant1")
    _becomes(portal, "applicant1", member=True)  # the positive control: the nudge of a commit is acted on


def test_a_suspension_whose_commit_fails_keeps_the_person_in_the_group(portal: Portal) -> None:
    with session_scope(portal.engine) as db:
        application_id = _approve(db, portal, "applicant1").id or 0
    _becomes(portal, "applicant1", member=True)
    with pytest.raises(CommitRefused), session_scope(portal.engine) as db:
        _refuse_commit(db)
        _suspend(db, portal, service.get_application(db, application_id))
    assert _in_group(portal.directory, "applicant1", "SOHO-Agents")
    with session_scope(portal.engine) as db:
        _suspend(db, portal, service.get_application(db, application_id))
    _becomes(portal, "applicant1", member=False)


def test_the_scheduled_pass_undoes_hand_edits_for_managed_people_only(portal: Portal) -> None:
    with session_scope(portal.engine) as db:
        kept = _approve(db, portal, "applicant1")
        suspended = _approve(db, portal, "applicant2")
        _suspend(db, portal, suspended)
    _becomes(portal, "applicant1", member=True)
    _becomes(portal, "applicant2", member=False)
    portal.directory.remove_from_group("applicant1", "SOHO-Agents")
    portal.directory.add_to_group("applicant2", "SOHO-Agents")
    portal.directory.add_to_group("hr1", "SOHO-Agents")
    _repair(portal)
    assert _in_group(portal.directory, "applicant1", "SOHO-Agents")
    assert not _in_group(portal.directory, "applicant2", "SOHO-Agents")
    assert _in_group(portal.directory, "hr1", "SOHO-Agents"), "enrollment never managed hr1"
    with session_scope(portal.engine) as db:
        audited = db.exec(
            select(AuditEvent.target, AuditEvent.outcome)
            .where(AuditEvent.action == "enrollment.membership")
            .order_by(col(AuditEvent.seq))
        ).all()
    assert set(audited[-2:]) == {("applicant1", "added"), ("applicant2", "removed")}
    _repair(portal)
    with session_scope(portal.engine) as db:
        assert len(db.exec(select(AuditEvent).where(AuditEvent.action == "enrollment.membership")).all()) == len(
            audited
        ), "a second pass with nothing to repair changed something"
    assert kept.state is ApplicationState.APPROVED


def _application(login: str, state: ApplicationState, person_id: str | None) -> Application:
    now = datetime.now(UTC)
    return Application(
        login=login,
        person_id=person_id,
        user_dn=f"CN={login},OU=People,DC=corp",
        state=state,
        stage="approval",
        started_by="hr1",
        started_at=now,
        updated_at=now,
        approved_at=now,
    )


def test_one_person_under_two_logins_is_one_membership_whichever_login_is_nudged(engine: Engine) -> None:
    """Approved as jdoe, renamed jsmith, a second application as jsmith suspended: one person, in the group while
    one of their applications is approved — not removed for one login and added back for the other on every pass.
    Applications from before ids were kept stay apart by login."""
    with session_scope(engine) as db:
        db.add(_application("jdoe", ApplicationState.APPROVED, "guid-1"))
        db.add(_application("jsmith", ApplicationState.SUSPENDED, "guid-1"))
        db.add(_application("old.one", ApplicationState.SUSPENDED, None))
        db.add(_application("old.two", ApplicationState.APPROVED, None))
    with session_scope(engine) as db:
        everyone = wanted_memberships(db)
        nudged = wanted_memberships(db, ["jsmith"])
    assert {key: (m.login, m.member) for key, m in everyone.items()} == {
        "guid-1": ("jsmith", True),
        "login:old.one": ("old.one", False),
        "login:old.two": ("old.two", True),
    }
    assert nudged == {"guid-1": everyone["guid-1"]}


@pytest.fixture
def samba_portal(
    samba_dc: SambaDC,
    person_and_group: tuple[str, str],  # noqa: F811
    tmp_path: Path,
    sqlite_template: Path,
) -> Iterator[Portal]:
    _, group = person_and_group
    db_url = copy_sqlite(sqlite_template, tmp_path / "membership.db")
    engine = make_engine(db_url)
    directory = open_directory(samba_dc.settings())
    try:
        with running_portal(tmp_path, db_url, engine, directory, agent_group=group_dn(group)) as portal:
            yield portal
    finally:
        directory.close()
        engine.dispose()


@pytest.mark.e2e
def test_in_samba_a_failed_commit_leaves_ad_unchanged_and_the_repair_restores_a_removed_member(
    samba_portal: Portal,
    person_and_group: tuple[str, str],  # noqa: F811
) -> None:
    login, group = person_and_group
    with pytest.raises(CommitRefused), session_scope(samba_portal.engine) as db:
        _refuse_commit(db)
        _approve(db, samba_portal, login)
    assert not _in_group(samba_portal.directory, user_dn(login), group_dn(group))
    with session_scope(samba_portal.engine) as db:
        _approve(db, samba_portal, login)
    _becomes(samba_portal, user_dn(login), True, group_dn(group))
    samba_portal.directory.remove_from_group(user_dn(login), group_dn(group))
    assert not _in_group(samba_portal.directory, user_dn(login), group_dn(group))
    _repair(samba_portal)
    assert _in_group(samba_portal.directory, user_dn(login), group_dn(group))


@pytest.mark.e2e
def test_in_samba_a_suspension_after_a_rename_still_takes_the_person_out_of_the_group(
    samba_dc: SambaDC,
    samba_portal: Portal,
    person_and_group: tuple[str, str],  # noqa: F811
) -> None:
    """Approved, then renamed in AD (new CN, so a new DN, and a new account name: a marriage, a typo fixed), then
    suspended: the group loses the person, found by their objectGUID, not by the name or DN the application kept."""
    login, group = person_and_group
    with session_scope(samba_portal.engine) as db:
        application_id = _approve(db, samba_portal, login).id or 0
    _becomes(samba_portal, user_dn(login), True, group_dn(group))
    renamed = f"{login}-r"
    admin = samba_dc.admin()
    try:
        assert admin.modify_dn(user_dn(login), f"CN={renamed}"), admin.result
        assert admin.modify(user_dn(renamed), {"sAMAccountName": [(MODIFY_REPLACE, [renamed])]}), admin.result
        with pytest.raises(Conflict), session_scope(samba_portal.engine) as db:  # one live application a person
            _approve(db, samba_portal, renamed)
        with session_scope(samba_portal.engine) as db:
            _suspend(db, samba_portal, service.get_application(db, application_id))
        _becomes(samba_portal, user_dn(renamed), False, group_dn(group))
        # The worker audits after it changed the group, in a commit of its own: wait for that row too.
        wait_for(lambda: _last_membership_outcome(samba_portal, login) == "removed")
    finally:
        admin.modify(user_dn(renamed), {"sAMAccountName": [(MODIFY_REPLACE, [login])]})
        admin.modify_dn(user_dn(renamed), f"CN={login}")
        admin.unbind()
