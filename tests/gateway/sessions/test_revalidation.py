"""A live session loses its right within one re-validation run: disabled, removed from the group, cert revoked."""

import json
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pyotp
import pytest
import yaml
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlmodel import col, select

from certs.revocation import HttpRevocationChecker
from gateway.app import create_app
from gateway.audit.models import AuditEvent
from gateway.db import session_scope
from gateway.directory import BuiltinDirectory, Directory, DirectorySettings, DirectoryUser, open_directory
from gateway.events import listen, unlisten
from gateway.pki import service as pki
from gateway.policies.service import import_policy
from gateway.sessions.models import EndReason, HomeSession, SessionState
from gateway.sessions.revalidation import apply_policy, revalidate
from gateway.sessions.service import OVER, SESSION_GROUPS_CHANGED, end_idle_and_expired
from gateway.settings import load_settings
from policy.document import DEFAULT_POLICY_FILE
from tests.directory.slapd import Slapd
from tests.gateway.sessions.conftest import GROUPS, PASSWORDS, Portal, csrf_of, page_error, sign_in
from tests.support.portal import enrolment_code, passed_second_factor, redeem_enrolment_code
from tests.support.server import free_port, serving
from tests.support.workers import wait_for

HTML = {"accept": "text/html"}


def _signed_in(portal: Portal, login: str) -> None:
    headers = portal.proxy_headers(login) if login in portal.certificates else None
    with portal.client() as client:
        assert sign_in(client, login, headers=headers).status_code == 303


def _unreachable_directory() -> Directory:
    """The real LDAP adapter against a port nobody listens on: every lookup raises ``DirectoryUnavailable``."""
    return open_directory(
        DirectorySettings(
            kind="openldap",
            servers=[f"ldaps://127.0.0.1:{free_port()}"],
            base_dn="dc=corp,dc=example",
            bind_dn="cn=sohogw,dc=corp,dc=example",
            bind_password="unused: nobody answers",
        )
    )


def _revalidate(portal: Portal, directory: Directory | None = None, now: datetime | None = None) -> dict[str, str]:
    revalidate(
        portal.engine,
        directory or portal.directory,
        portal.authority,
        HttpRevocationChecker(timeout_seconds=1),
        now or datetime.now(UTC),
    )
    with session_scope(portal.engine) as db:
        return {s.login: (s.end_reason or s.state) for s in db.exec(select(HomeSession)).all()}


def test_untouched_sessions_survive_revalidation(portal: Portal) -> None:
    _signed_in(portal, "agent1")
    _signed_in(portal, "sup1")
    assert _revalidate(portal) == {"agent1": SessionState.ACTIVE, "sup1": SessionState.ACTIVE}


def test_disabled_account_loses_its_session(portal: Portal) -> None:
    _signed_in(portal, "sup1")
    portal.directory.add_user("sup1", PASSWORDS["sup1"], groups=GROUPS["sup1"], disabled=True)
    assert _revalidate(portal)["sup1"] == EndReason.ACCOUNT_DISABLED


def test_removal_from_the_group_ends_the_session(portal: Portal) -> None:
    _signed_in(portal, "agent1")
    portal.directory.remove_from_group("agent1", "SOHO-Agents")
    assert _revalidate(portal)["agent1"] == EndReason.ROLE_REMOVED


def _asking_a_second_factor_of(role: str) -> str:
    """The default policy, with the roles' second factor asked of ``role`` too."""
    policy = yaml.safe_load(DEFAULT_POLICY_FILE.read_text(encoding="utf-8"))
    policy["roles"].setdefault(role, {})["require_totp"] = True
    return yaml.safe_dump(policy)


def _signed_in_with_second_factor(portal: Portal, login: str) -> None:
    """A privileged person's first sign-in: the password, a one-time enrolment code from the host, then the code
    of the authenticator just set up."""
    with portal.client() as client:
        assert sign_in(client, login).headers["location"] == "/login/second-factor"
        assert redeem_enrolment_code(client, enrolment_code(portal.engine, portal.directory, login)).status_code == 303
        page = client.get("/login/second-factor", headers=HTML)
        secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.text)
        assert secret, page.text
        answer = client.post(
            "/login/second-factor",
            data={"code": pyotp.TOTP(secret.group(1)).now(), "csrf": csrf_of(page)},
            headers=HTML,
        )
        assert passed_second_factor(answer), answer.text


def _endings(portal: Portal, login: str) -> list[tuple[str, str]]:
    with session_scope(portal.engine) as db:
        rows = db.exec(select(AuditEvent).where(AuditEvent.action == "session.end", AuditEvent.target == login))
        return [(row.actor, row.outcome) for row in rows]


def test_a_second_factor_the_policy_now_asks_ends_the_live_sessions_signed_in_without_one(portal: Portal) -> None:
    """A security admin asks agents for a second factor: agent1, signed in with its certificate and password alone,
    is ended and told why; sup1 (not asked) and admin1 (signed in with its code) go on; agent2, signing in after
    the import, waits for its code, and a session waiting for it is not live: left as it is."""
    with portal.client() as agent1:
        assert sign_in(agent1, "agent1", headers=portal.proxy_headers("agent1")).status_code == 303
        _signed_in(portal, "sup1")
        _signed_in_with_second_factor(portal, "admin1")
        with session_scope(portal.engine) as db:
            policy = _asking_a_second_factor_of("agent")
            import_policy(db, policy, actor="secadmin", source="test", now=datetime.now(UTC))
        with portal.client() as agent2:
            answer = sign_in(agent2, "agent2", headers=portal.proxy_headers("agent2"))
            assert answer.headers["location"] == "/login/second-factor"
        assert _revalidate(portal) == {
            "agent1": EndReason.SECOND_FACTOR_REQUIRED,
            "sup1": SessionState.ACTIVE,
            "admin1": SessionState.ACTIVE,
            "agent2": SessionState.PENDING_SECOND_FACTOR,
        }
        assert _endings(portal, "agent1") == [("revalidation", "second_factor_required")]
        bounced = agent1.get("/agent", headers=HTML)
        assert bounced.headers["location"] == "/login?ended=second_factor_required"
        assert "now needs a second sign-in step" in page_error(agent1.get(bounced.headers["location"], headers=HTML))
        chinese = agent1.get(bounced.headers["location"], headers=HTML | {"accept-language": "zh-CN"})
        assert "需要第二步验证" in page_error(chinese)


def test_joining_a_group_whose_role_asks_a_second_factor_ends_a_session_signed_in_without_one(portal: Portal) -> None:
    """sup1 keeps the supervisor's role and gains the security admin's, which asks a second factor sup1 never gave."""
    _signed_in(portal, "sup1")
    portal.directory.add_to_group("sup1", "SOHO-SecurityAdmins")
    assert _revalidate(portal) == {"sup1": EndReason.SECOND_FACTOR_REQUIRED}
    assert _endings(portal, "sup1") == [("revalidation", "second_factor_required")]


def test_a_group_taken_away_while_the_role_stays_is_stored_audited_and_nudged_once(portal: Portal) -> None:
    policy = yaml.safe_load(DEFAULT_POLICY_FILE.read_text(encoding="utf-8"))
    policy["groups"]["Trust-Readers"] = {"network_scope": ["172.30.0.0/24 8081/tcp"]}  # grants a reach, no role
    with session_scope(portal.engine) as db:
        import_policy(db, yaml.safe_dump(policy), actor="secadmin", source="test", now=datetime.now(UTC))
    portal.directory.add_to_group("agent1", "Trust-Readers")
    _signed_in(portal, "agent1")
    portal.directory.remove_from_group("agent1", "Trust-Readers")
    heard: list[str] = []

    def hear(_topic: str, session_id: str) -> None:
        heard.append(session_id)

    listen(SESSION_GROUPS_CHANGED, hear)
    try:
        assert _revalidate(portal) == {"agent1": SessionState.ACTIVE}  # still an agent: the session goes on
        assert _revalidate(portal) == {"agent1": SessionState.ACTIVE}  # nothing changed since: nothing written
    finally:
        unlisten(SESSION_GROUPS_CHANGED, hear)
    with session_scope(portal.engine) as db:
        session = db.exec(select(HomeSession)).one()
        changes = db.exec(select(AuditEvent).where(AuditEvent.action == "session.groups")).all()
        assert (session.groups, session.policy_groups) == ('["SOHO-Agents"]', '["SOHO-Agents"]')
        assert [json.loads(row.detail)["removed"] for row in changes] == [["Trust-Readers"]]
    assert heard == [session.id]


def test_revoked_certificate_ends_the_session(portal: Portal) -> None:
    _signed_in(portal, "agent1")
    _signed_in(portal, "agent2")
    with session_scope(portal.engine) as db:
        serial = f"{portal.certificates['agent1'].serial_number:X}"
        pki.revoke(
            db,
            portal.authority,
            serial,
            "keyCompromise",
            actor=pki.Actor("admin"),
            now=datetime.now(UTC),
            crl_validity=timedelta(hours=1),
        )
    outcome = _revalidate(portal)
    assert outcome["agent1"] == EndReason.CERTIFICATE_REVOKED
    assert outcome["agent2"] == SessionState.ACTIVE


def _outages(portal: Portal) -> int:
    with session_scope(portal.engine) as db:
        rows = db.exec(
            select(AuditEvent).where(
                col(AuditEvent.action) == "session.revalidate", col(AuditEvent.outcome) == "directory_unavailable"
            )
        )
        return len(rows.all())


def test_directory_outage_keeps_sessions_is_audited_and_the_next_run_catches_up(portal: Portal) -> None:
    """The real LDAP adapter against a port nobody listens on: the sessions are kept (the documented choice), the
    outage leaves an audit row, and the first run with the directory back ends what changed meanwhile."""
    _signed_in(portal, "sup1")
    portal.directory.set_disabled("sup1", True)  # type: ignore[attr-defined]
    unreachable = _unreachable_directory()
    try:
        assert _revalidate(portal, unreachable)["sup1"] == SessionState.ACTIVE
    finally:
        unreachable.close()
    assert _outages(portal) == 1
    assert _revalidate(portal)["sup1"] == EndReason.ACCOUNT_DISABLED
    assert _outages(portal) == 1


@contextmanager
def _unavailable_directory(kind: str, request: pytest.FixtureRequest) -> Iterator[Directory]:
    """The real LDAP adapter unable to answer: against a port nobody listens on, or against slapd with its one
    service connection held by another caller (a login flood: ``all directory service connections are busy``)."""
    if kind == "unreachable":
        directory = _unreachable_directory()
        try:
            yield directory
        finally:
            directory.close()
        return
    slapd: Slapd = request.getfixturevalue("slapd")
    directory = open_directory(slapd.settings(pool_size=1, receive_timeout=1))
    held, release = threading.Event(), threading.Event()

    def hold(_connection: object) -> None:
        held.set()
        release.wait(30)

    holder = threading.Thread(target=directory._pool.run, args=(hold,))  # type: ignore[attr-defined]
    holder.start()
    try:
        assert held.wait(10)
        yield directory
    finally:
        release.set()
        holder.join()
        directory.close()


@pytest.mark.parametrize(
    ("outage", "problem"),
    [("unreachable", "no directory server answered"), ("pool_busy", "all directory service connections are busy")],
)
def test_a_directory_outage_shields_no_session_from_a_second_factor_the_policy_now_asks(
    portal: Portal, outage: str, problem: str, request: pytest.FixtureRequest
) -> None:
    """The policy's verdict needs only the groups the session stores: with the directory unable to answer, agent1
    (signed in without a code) still ends once agents are asked one, sup1 (not asked) goes on, the outage is audited
    once."""
    _signed_in(portal, "agent1")
    _signed_in(portal, "sup1")
    with session_scope(portal.engine) as db:
        import_policy(db, _asking_a_second_factor_of("agent"), actor="secadmin", source="test", now=datetime.now(UTC))
    with _unavailable_directory(outage, request) as unavailable:
        assert _revalidate(portal, unavailable) == {
            "agent1": EndReason.SECOND_FACTOR_REQUIRED,
            "sup1": SessionState.ACTIVE,
        }
    with session_scope(portal.engine) as db:
        outages = db.exec(select(AuditEvent).where(col(AuditEvent.outcome) == "directory_unavailable")).all()
    assert [json.loads(row.detail)["problem"].startswith(problem) for row in outages] == [True]
    assert _endings(portal, "agent1") == [("revalidation", "second_factor_required")]
    assert _endings(portal, "sup1") == []


def test_the_policy_applied_on_several_nodes_at_once_ends_a_session_once(portal: Portal) -> None:
    """Every node hears ``policy.changed`` and runs the policy's pass: four at once write one ending."""
    _signed_in(portal, "sup1")
    with session_scope(portal.engine) as db:
        policy = _asking_a_second_factor_of("supervisor")
        import_policy(db, policy, actor="secadmin", source="test", now=datetime.now(UTC))
    with ThreadPoolExecutor(4) as nodes:
        list(nodes.map(lambda _: apply_policy(portal.engine, datetime.now(UTC)), range(4)))
    assert _endings(portal, "sup1") == [("revalidation", "second_factor_required")]


@pytest.mark.parametrize(("minutes", "reason"), [(31, EndReason.IDLE), (11 * 60, EndReason.MAX_LENGTH)])
def test_idle_and_overlong_sessions_end(portal: Portal, minutes: int, reason: EndReason) -> None:
    _signed_in(portal, "sup1")  # supervisors: 30 min idle, 10 h maximum in the default policy
    later = datetime.now(UTC) + timedelta(minutes=minutes)
    with session_scope(portal.engine) as db:
        assert end_idle_and_expired(db, later) == 1
        assert db.exec(select(HomeSession)).one().end_reason == reason


def test_scheduled_revalidation_ends_a_disabled_account_within_its_interval(
    tmp_path: Path, db_url: str, engine: Engine
) -> None:
    """The real scheduler, a 5 s interval: the session is gone within one interval (plus the job's own run)."""
    settings = load_settings(
        data_dir=tmp_path, database_url=db_url, portal={"revalidate_seconds": 5}, seats={"enabled": False}
    )
    directory = BuiltinDirectory(settings.directory_settings)
    directory.add_user("sup1", PASSWORDS["sup1"], groups=GROUPS["sup1"])
    app = create_app(settings, engine=engine, directory=directory)
    with serving(app) as base_url, httpx.Client(base_url=base_url, follow_redirects=False) as client:
        assert sign_in(client, "sup1").status_code == 303
        directory.set_disabled("sup1", True)
        disabled_at = time.monotonic()
        while time.monotonic() - disabled_at < 3 * 5:
            with session_scope(engine) as db:
                session = db.exec(select(HomeSession)).one()
            if session.state in OVER:  # ending, or already ended: its children closed at once
                break
            time.sleep(0.2)
        took = time.monotonic() - disabled_at
        assert session.end_reason == EndReason.ACCOUNT_DISABLED
        assert took < 2 * 5  # the promise is one interval; the second is room for a loaded machine
        assert (
            client.get("/supervisor", headers={"accept": "text/html"}).headers["location"]
            == "/login?ended=account_disabled"
        )


class LookupCountingDirectory(BuiltinDirectory):
    """The built-in directory, counting the entries re-validation asks it for."""

    lookups = 0

    def lookup(self, login_or_dn: str) -> DirectoryUser:
        self.lookups += 1
        return super().lookup(login_or_dn)


@contextmanager
def _one_node_polling_hourly(
    tmp_path: Path, db_url: str, engine: Engine, *logins: str
) -> Iterator[tuple[FastAPI, LookupCountingDirectory]]:
    """The real app and its workers, the poll set to an hour and its first pass over, ``logins`` signed in: what a
    ``policy.changed`` nudge does is all that happens to their sessions."""
    settings = load_settings(
        data_dir=tmp_path, database_url=db_url, portal={"revalidate_seconds": 3600}, seats={"enabled": False}
    )
    directory = LookupCountingDirectory(settings.directory_settings)
    for login in logins:
        directory.add_user(login, PASSWORDS[login], groups=GROUPS[login])
    app = create_app(settings, engine=engine, directory=directory)
    with serving(app) as base_url, httpx.Client(base_url=base_url, follow_redirects=False) as client:
        assert wait_for(lambda: app.state.workers.status("sessions.revalidate").last_success_at is not None)
        for login in logins:
            assert sign_in(client, login).status_code == 303
        yield app, directory


def _imported_and_applied(app: FastAPI, engine: Engine, policy: str) -> dict[str, str]:
    """Import ``policy`` and wait for the re-validation pass its nudge runs; the sessions' states after it."""
    status = app.state.workers.status
    before = status("sessions.revalidate").last_success_at
    with session_scope(engine) as db:
        import_policy(db, policy, actor="secadmin", source="test", now=datetime.now(UTC))
    assert wait_for(lambda: status("sessions.revalidate").last_success_at != before, seconds=10)
    with session_scope(engine) as db:
        return {s.login: (s.end_reason or s.state) for s in db.exec(select(HomeSession)).all()}


def test_an_imported_policy_reaches_live_sessions_at_once_asking_the_directory_only_about_those_it_would_end(
    tmp_path: Path, db_url: str, engine: Engine
) -> None:
    """The import's nudge alone ends the session: an import that ends nobody asks the directory nothing; one that
    asks supervisors a second factor asks it about sup1 alone (the groups read fresh still give the role that asks
    it), not about hr1."""
    with _one_node_polling_hourly(tmp_path, db_url, engine, "hr1", "sup1") as (app, directory):
        looked_up = directory.lookups
        states = _imported_and_applied(app, engine, _asking_a_second_factor_of("agent"))
        assert states == {"hr1": SessionState.ACTIVE, "sup1": SessionState.ACTIVE}
        assert directory.lookups == looked_up
        states = _imported_and_applied(app, engine, _asking_a_second_factor_of("supervisor"))
        assert states == {"hr1": SessionState.ACTIVE, "sup1": EndReason.SECOND_FACTOR_REQUIRED}
        assert directory.lookups == looked_up + 1


def _role_moved_to_a_new_group() -> str:
    """The default policy, the supervisor role granted by ``SOHO-Leads`` instead of ``SOHO-Supervisors``."""
    policy = yaml.safe_load(DEFAULT_POLICY_FILE.read_text(encoding="utf-8"))
    policy["groups"]["SOHO-Leads"] = policy["groups"].pop("SOHO-Supervisors")
    return yaml.safe_dump(policy)


def test_an_imported_policy_keeps_a_role_moved_to_a_group_its_holder_just_joined(
    tmp_path: Path, db_url: str, engine: Engine
) -> None:
    """Review s13: the operator adds the supervisors to SOHO-Leads, then imports a policy keying their role on it.
    The join is not in sup1's stored groups yet (the subscription never sees joins), so they only pick sup1: the
    directory's groups keep its role, and its session stores them."""
    with _one_node_polling_hourly(tmp_path, db_url, engine, "sup1") as (app, directory):
        directory.add_user("sup1", PASSWORDS["sup1"], groups=[*GROUPS["sup1"], "SOHO-Leads"])
        assert _imported_and_applied(app, engine, _role_moved_to_a_new_group()) == {"sup1": SessionState.ACTIVE}
    with session_scope(engine) as db:
        assert "SOHO-Leads" in json.loads(db.exec(select(HomeSession)).one().groups)
