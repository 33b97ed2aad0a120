"""Against the real Samba AD DC: approval puts the person in the SOHO group so they can sign in as an agent;
rejection after approval takes the membership away and ends their session."""

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ldap3 import BASE

from gateway.db import make_engine, session_scope
from gateway.directory import open_directory
from gateway.enrollment import decisions, service
from gateway.enrollment.models import ApplicationState, DecisionOutcome
from tests.directory.samba import PASSWORD, REALM, SambaDC, group_dn, user_dn
from tests.gateway.enrollment.conftest import PHONE, Portal, policy_text, running_portal, sign_in, wait_for
from tests.support.sqlite import copy_sqlite

pytestmark = pytest.mark.e2e


@pytest.fixture
def person_and_group(samba_dc: SambaDC) -> Iterator[tuple[str, str]]:
    """A fresh user in no group and an empty SOHO group, both with unique names; deleted afterwards."""
    suffix = uuid.uuid4().hex[:8]
    login, group = f"enr-{suffix}", f"SOHO-Home-{suffix}"
    conn = samba_dc.admin()
    try:
        assert conn.add(
            user_dn(login),
            attributes={
                "objectClass": ["user"],
                "sAMAccountName": login,
                "userPrincipalName": f"{login}@{REALM.lower()}",
                "displayName": login,
                "unicodePwd": f'"{PASSWORD}"'.encode("utf-16-le"),
                "userAccountControl": "512",
            },
        ), conn.result
        assert conn.add(group_dn(group), attributes={"objectClass": ["group"], "sAMAccountName": group}), conn.result
        yield login, group
    finally:
        conn.delete(user_dn(login))
        conn.delete(group_dn(group))
        conn.unbind()


def _members(samba_dc: SambaDC, group: str) -> list[str]:
    conn = samba_dc.admin()
    try:
        conn.search(group_dn(group), "(objectClass=group)", BASE, attributes=["member"])
        return [str(m).lower() for m in conn.entries[0].member.values] if conn.entries else []
    finally:
        conn.unbind()


def _decide_all(portal: Portal, login: str) -> int:
    settings, now = portal.settings.enrollment, datetime.now(UTC)
    with session_scope(portal.engine) as db:
        application = service.start_application(
            db, portal.handoff(), login, callback_number=PHONE, settings=settings, actor="hr", now=now
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
                actor="hr",
                now=now,
            )
        assert application.state is ApplicationState.APPROVED
        return application.id or 0


def test_approval_lets_the_person_sign_in_as_agent_and_rejection_takes_it_back(
    samba_dc: SambaDC, person_and_group: tuple[str, str], tmp_path: Path, sqlite_template: Path
) -> None:
    login, group = person_and_group
    db_url = copy_sqlite(sqlite_template, tmp_path / "enrollment.db")
    engine = make_engine(db_url)
    directory = open_directory(samba_dc.settings())
    policy = policy_text(agent_group=f'"{group_dn(group)}"', onsite=False)  # a directory's group: by its DN
    try:
        with running_portal(tmp_path, db_url, engine, directory, policy, agent_group=group_dn(group)) as portal:
            with portal.client() as client:
                refused = sign_in(client, login, PASSWORD)  # no role yet: the policy asks for a certificate
                assert refused.status_code == 401 and "client certificate is required" in refused.text
            application_id = _decide_all(portal, login)
            wait_for(lambda: _members(samba_dc, group) == [user_dn(login).lower()])
            with portal.client() as agent:
                assert sign_in(agent, login, PASSWORD).status_code == 303
                assert agent.get("/agent", headers={"accept": "text/html"}).status_code == 200
                with session_scope(portal.engine) as db:
                    application = service.get_application(db, application_id)
                    decisions.close(
                        db,
                        application,
                        ApplicationState.REJECTED,
                        "failed the re-check",
                        handoff=portal.handoff(),
                        actor="hr",
                        now=datetime.now(UTC),
                    )
                wait_for(lambda: _members(samba_dc, group) == [])
                assert (
                    agent.get("/agent", headers={"accept": "text/html"}).headers["location"].startswith("/login?ended=")
                )
            with portal.client() as client:
                assert sign_in(client, login, PASSWORD).status_code == 401
    finally:
        engine.dispose()
