"""Directory changes reach live sessions through syncrepl (refreshAndPersist, slapd's syncprov overlay).

As with Active Directory (``test_directory_changes_with_active_directory.py``), the poll is set to an hour and the
sessions' jobs run as the app registers them; agents sign in through the portal with their certificate and their
slapd password. OpenLDAP without ppolicy has no disabled or locked state: what it can take away is a group
membership (directly, or by taking the agent's team out of the agents' group) and the account itself. The
subscription's connection goes through a relay that one test cuts.
"""

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives import serialization
from ldap3 import MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE
from sqlmodel import select

from certs.revocation import HttpRevocationChecker
from gateway.adoption import LegacyAdoption
from gateway.clock import utcnow
from gateway.db import make_engine, session_scope
from gateway.directory import open_directory, open_directory_watch
from gateway.pki import service as pki
from gateway.sessions.login import LoginServices
from gateway.sessions.models import EndReason, HomeSession, SessionState
from gateway.sessions.throttle import ThrottleLimits
from gateway.sessions.workers import DirectoryChanges, session_workers
from policy import DEFAULT_POLICY_FILE
from tests.directory import slapd as openldap
from tests.gateway.sessions.directory_change_checks import PATIENCE, subscription_audit, wait_for
from tests.support.portal import PROXY_SECRET, Portal, serving_portal, sign_in
from tests.support.sqlite import copy_sqlite
from tests.support.tcp_relay import TcpRelay, tcp_relay
from tests.support.workers import running
from tests.support.workers import wait_for as workers_wait_for

pytestmark = pytest.mark.e2e
AGENTS = openldap.group_dn("soho-agents")


def _policy() -> str:
    text = DEFAULT_POLICY_FILE.read_text(encoding="utf-8")
    return text.replace("\n  SOHO-Agents:\n", f'\n  "{AGENTS}":\n')


@dataclass(frozen=True)
class Agent:
    login: str
    dn: str
    session_id: str


@dataclass
class World:
    portal: Portal
    server: openldap.Slapd
    subscription: DirectoryChanges
    relay: TcpRelay

    def agent(self, team: str | None = None, also: tuple[str, ...] = ()) -> Agent:
        """A new agent in slapd, a direct member of soho-agents (or of ``team``) and of the groups ``also`` names,
        signed in with its certificate."""
        login = f"rv.{secrets.token_hex(3)}"
        dn = openldap.user_dn(login)
        group = openldap.group_dn(team) if team else AGENTS
        with self.server.admin() as admin:
            person = {"objectClass": ["inetOrgPerson"], "uid": login, "cn": login, "sn": login}
            assert admin.add(dn, attributes={**person, "userPassword": openldap.PASSWORD}), admin.result
            for member_of in (group, *also):
                assert admin.modify(member_of, {"member": [(MODIFY_ADD, [dn])]}), admin.result
        with session_scope(self.portal.engine) as db:
            issued = pki.issue_agent_certificate(
                db,
                self.portal.authority,
                upn=f"{login}@soho.example",
                account=login,
                wireguard_key="xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=",
                person_id=None,
                actor=pki.Actor("test"),
                now=datetime.now(UTC),
                lifetime=timedelta(days=1),
                urls=pki.publication_urls("http://x"),
            )
        header = {
            "X-SSL-Client-Cert": quote(issued.cert.public_bytes(serialization.Encoding.PEM).decode()),
            "X-Sohogw-Proxy-Secret": PROXY_SECRET,
        }
        with self.portal.client() as client:
            answer = sign_in(client, login, openldap.PASSWORD, headers=header)
            assert answer.status_code == 303, answer.text
        with session_scope(self.portal.engine) as db:
            session = db.exec(select(HomeSession).where(HomeSession.login == login)).one()
            assert session.state is SessionState.ACTIVE
        return Agent(login, dn, session.id)

    def session(self, agent: Agent) -> HomeSession:
        with session_scope(self.portal.engine) as db:
            session = db.get(HomeSession, agent.session_id)
            assert session is not None
            return session


@pytest.fixture(scope="module")
def world(slapd: openldap.Slapd, tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("directory-changes-openldap")
    url = copy_sqlite(sqlite_template, tmp / "sohogw.db")
    engine = make_engine(url)
    with tcp_relay(("127.0.0.1", slapd.port)) as relay:
        relayed = [f"ldap://127.0.0.1:{relay.port}"]
        settings = slapd.settings(servers=relayed, watch_heartbeat_seconds=1, receive_timeout=2)
        directory = open_directory(settings)
        try:
            with serving_portal(
                tmp,
                url,
                engine,
                kind=Portal,
                passwords={},
                groups={},
                directory=directory,
                policy=_policy(),
                trusted_proxy=True,
                settings={"portal": {"revalidate_seconds": 3600}},
            ) as portal:
                services = LoginServices(
                    directory, portal.authority, HttpRevocationChecker(), ThrottleLimits(), "n1", LegacyAdoption()
                )
                workers = session_workers(engine, services, portal.settings, utcnow)
                subscription = next(worker for worker in workers if isinstance(worker, DirectoryChanges))
                with running(workers, engine):
                    assert workers_wait_for(lambda: subscription.watch is not None, PATIENCE)
                    assert subscription.watch.subscribed.wait(PATIENCE)
                    yield World(portal, slapd, subscription, relay)
        finally:
            directory.close()
            engine.dispose()


def _leave_group(world: World, agent: Agent) -> None:
    with world.server.admin() as admin:
        assert admin.modify(AGENTS, {"member": [(MODIFY_DELETE, [agent.dn])]}), admin.result


def _delete(world: World, agent: Agent) -> None:
    with world.server.admin() as admin:
        assert admin.delete(agent.dn), admin.result


CHANGES = {
    "removed from the group": (_leave_group, EndReason.ROLE_REMOVED),
    "deleted": (_delete, EndReason.ACCOUNT_GONE),
}


@pytest.mark.parametrize("change", CHANGES)
def test_a_change_in_openldap_ends_the_session_without_the_poll(world: World, change: str) -> None:
    apply, reason = CHANGES[change]
    bystander, agent = world.agent(), world.agent()
    assert world.subscription.watch.subscribed.wait(PATIENCE)
    apply(world, agent)
    wait_for(f"the end of the session after '{change}'", lambda: world.session(agent).state is SessionState.ENDED)
    assert world.session(agent).end_reason is reason
    assert world.session(bystander).state is SessionState.ACTIVE


def test_a_team_taken_out_of_the_agents_group_ends_its_members_sessions(world: World) -> None:
    """The change is to a group the agent is in only through nesting (team → soho-agents): the session's policy
    groups, resolved at sign-in, name the team, so the subscription still finds the session."""
    team = f"team-{secrets.token_hex(3)}"
    with world.server.admin() as admin:
        members = {"objectClass": ["groupOfNames"], "cn": team, "member": [openldap.user_dn(openldap.PROBE)]}
        assert admin.add(openldap.group_dn(team), attributes=members), admin.result
        assert admin.modify(AGENTS, {"member": [(MODIFY_ADD, [openldap.group_dn(team)])]}), admin.result
    bystander, agent = world.agent(), world.agent(team=team)
    assert world.subscription.watch.subscribed.wait(PATIENCE)
    with world.server.admin() as admin:
        assert admin.modify(AGENTS, {"member": [(MODIFY_DELETE, [openldap.group_dn(team)])]}), admin.result
    wait_for("the end of the team member's session", lambda: world.session(agent).state is SessionState.ENDED)
    assert world.session(agent).end_reason is EndReason.ROLE_REMOVED
    assert world.session(bystander).state is SessionState.ACTIVE


def test_a_group_taken_away_while_the_role_stays_reaches_the_session_without_the_poll(world: World) -> None:
    """A group that grants no role (a network scope, say) changes under a live session: the subscription's
    re-validation keeps the session and stores the groups it read, so what the policy grants by group follows."""
    name = f"readers-{secrets.token_hex(3)}"
    readers = openldap.group_dn(name)
    with world.server.admin() as admin:
        members = {"objectClass": ["groupOfNames"], "cn": name, "member": [openldap.user_dn(openldap.PROBE)]}
        assert admin.add(readers, attributes=members), admin.result
    agent = world.agent(also=(readers,))
    assert readers in json.loads(world.session(agent).policy_groups)
    assert world.subscription.watch.subscribed.wait(PATIENCE)
    with world.server.admin() as admin:
        assert admin.modify(readers, {"member": [(MODIFY_DELETE, [agent.dn])]}), admin.result
    wait_for("the session's groups", lambda: readers not in json.loads(world.session(agent).policy_groups))
    assert world.session(agent).state is SessionState.ACTIVE
    assert AGENTS in json.loads(world.session(agent).policy_groups)


def test_a_cut_syncrepl_subscription_is_re_established_and_a_change_still_ends_the_session(world: World) -> None:
    agent = world.agent()
    accepted = world.relay.accepted
    world.relay.cut()
    wait_for("a new connection through the relay", lambda: world.relay.accepted > accepted)
    assert world.subscription.watch.subscribed.wait(PATIENCE)
    with world.server.admin() as admin:  # an unrelated change first: the refresh's entries must not end anything
        assert admin.modify(agent.dn, {"description": [(MODIFY_REPLACE, ["night shift"])]}), admin.result
    _leave_group(world, agent)
    wait_for("the end of the session after the cut", lambda: world.session(agent).state is SessionState.ENDED)
    assert world.session(agent).end_reason is EndReason.ROLE_REMOVED


def test_a_silent_server_is_noticed_by_the_heartbeat(world: World) -> None:
    """A connection that stays open but carries nothing (a firewall dropping packets) is declared lost when the
    heartbeat goes unanswered, audited once, and re-established when the path is back."""
    before = subscription_audit(world.portal.engine)
    world.relay.frozen = True
    try:
        wait_for("the loss", lambda: subscription_audit(world.portal.engine).get("lost", 0) > before.get("lost", 0))
    finally:
        world.relay.frozen = False
    restored = before.get("restored", 0) + 1
    wait_for("the restoration", lambda: subscription_audit(world.portal.engine).get("restored", 0) == restored)
    assert subscription_audit(world.portal.engine).get("lost", 0) == before.get("lost", 0) + 1
    agent = world.agent()
    assert world.subscription.watch.subscribed.wait(PATIENCE)
    _leave_group(world, agent)
    wait_for("the end of the session", lambda: world.session(agent).state is SessionState.ENDED)


def test_a_server_without_syncprov_is_reported_lost_once_and_never_restored() -> None:
    """slapd refuses the refreshAndPersist search (its control is critical and nothing provides it): the loss is
    reported once with the server's reason, and the retries that follow neither report it again nor claim it back."""
    reports: list[tuple[bool, str]] = []

    def report(up: bool, why: str) -> None:
        reports.append((up, why))

    with openldap.running_slapd(sync_provider=False) as server, tcp_relay(("127.0.0.1", server.port)) as relay:
        relayed = server.settings(servers=[f"ldap://127.0.0.1:{relay.port}"], watch_heartbeat_seconds=1)
        directory = open_directory(relayed)
        watch = open_directory_watch(directory, frozenset, lambda _changed: None, report)
        assert watch is not None
        watch.start()
        try:
            wait_for("three attempts to subscribe", lambda: relay.accepted >= 3)
        finally:
            watch.stop()
            directory.close()
    assert [up for up, _ in reports] == [False]
    assert "unavailableCriticalExtension" in reports[0][1]
    assert not watch.subscribed.is_set()
