"""Re-validation against a real Samba AD DC: each account state it acts on ends the session with its own reason.

Every test signs a fresh agent in through the portal (certificate behind the proxy, password checked by Samba),
changes the account in Samba as an administrator would, runs one re-validation and reads the session and its audit
row. A bystander agent signed in for the whole module must come through every run untouched: re-validation that
ended everyone would fail there, re-validation that did nothing would fail on the changed account.
"""

import secrets
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from ldap3 import MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE, Connection, Server
from sqlmodel import col, select

from certs.revocation import HttpRevocationChecker
from gateway.audit.models import AuditEvent
from gateway.db import make_engine, session_scope
from gateway.directory import Directory, open_directory
from gateway.pki import service as pki
from gateway.sessions.models import EndReason, HomeSession, SessionState
from gateway.sessions.revalidation import RevalidationReport, revalidate
from tests.directory import samba
from tests.support.portal import PROXY_SECRET, Portal, serving_portal, sign_in
from tests.support.server import free_port
from tests.support.sqlite import copy_sqlite

pytestmark = pytest.mark.e2e
AGENTS = samba.group_dn("SOHO-Agents")
SECURITY_ADMINS = samba.group_dn("SOHO-Security")
"""The DC's security admins' group: its role asks a second factor (the default policy's roles)."""


@dataclass
class AdPortal(Portal):
    samba: samba.SambaDC

    def agent(self) -> "Agent":
        """A new agent account in Samba (direct member of SOHO-Agents) with its certificate, signed in."""
        login = f"rv.{secrets.token_hex(3)}"
        with self.samba.admin() as admin:
            dn = samba.user_dn(login)
            assert admin.add(
                dn,
                attributes={
                    "objectClass": ["user"],
                    "sAMAccountName": login,
                    "userPrincipalName": f"{login}@{samba.REALM.lower()}",
                    "unicodePwd": f'"{samba.PASSWORD}"'.encode("utf-16-le"),
                    "userAccountControl": "512",
                },
            ), admin.result
            assert admin.modify(AGENTS, {"member": [(MODIFY_ADD, [dn])]}), admin.result
        now = datetime.now(UTC)
        with session_scope(self.engine) as db:
            issued = pki.issue_agent_certificate(
                db,
                self.authority,
                upn=f"{login}@{samba.REALM.lower()}",
                account=login,
                wireguard_key="xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=",
                person_id=None,
                actor=pki.Actor("test"),
                now=now,
                lifetime=timedelta(days=1),
                urls=pki.publication_urls("http://x"),
            )
        header = {
            "X-SSL-Client-Cert": quote(issued.cert.public_bytes(serialization.Encoding.PEM).decode()),
            "X-Sohogw-Proxy-Secret": PROXY_SECRET,
        }
        with self.client() as client:
            answer = sign_in(client, login, samba.PASSWORD, headers=header)
            assert answer.status_code == 303, answer.text
        with session_scope(self.engine) as db:
            session = db.exec(select(HomeSession).where(HomeSession.login == login)).one()
        return Agent(login, dn, f"{issued.cert.serial_number:X}", session.id, issued.cert.not_valid_after_utc)


@dataclass(frozen=True)
class Agent:
    login: str
    dn: str
    serial: str
    session_id: str
    certificate_expires: datetime


@pytest.fixture(scope="module")
def portal(
    samba_dc: samba.SambaDC, tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> Iterator[AdPortal]:
    tmp = tmp_path_factory.mktemp("revalidation-ad")
    url = copy_sqlite(sqlite_template, tmp / "sohogw.db")
    engine = make_engine(url)
    directory = open_directory(samba_dc.settings())
    try:
        with serving_portal(
            tmp,
            url,
            engine,
            kind=AdPortal,
            passwords={},
            groups={},
            directory=directory,
            policy=samba.policy_by_dn().replace(samba.group_dn("SOHO-SecurityAdmins"), SECURITY_ADMINS),
            trusted_proxy=True,
            alongside=lambda app: nullcontext({"samba": samba_dc}),
        ) as running:
            yield running
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def bystander(portal: AdPortal) -> Agent:
    return portal.agent()


def _revalidate(
    portal: AdPortal, directory: Directory | None = None, now: datetime | None = None
) -> RevalidationReport:
    return revalidate(
        portal.engine,
        directory or portal.directory,
        portal.authority,
        HttpRevocationChecker(timeout_seconds=1),
        now or datetime.now(UTC),
    )


def _session(portal: AdPortal, agent: Agent) -> HomeSession:
    with session_scope(portal.engine) as db:
        session = db.get(HomeSession, agent.session_id)
        assert session is not None
        return session


def _ending_audited(portal: AdPortal, agent: Agent) -> list[str]:
    with session_scope(portal.engine) as db:
        rows = db.exec(
            select(AuditEvent).where(col(AuditEvent.action) == "session.end", col(AuditEvent.target) == agent.login)
        )
        return [row.outcome for row in rows]


def _wrong_binds(dc: samba.SambaDC, login: str, count: int) -> None:
    """Real failed binds against the domain's lockout policy, as someone guessing the password."""
    for _ in range(count):
        failed = Connection(Server(dc.ldaps_url, tls=dc.tls()), f"{login}@{samba.REALM.lower()}", "wrong-password")
        failed.open()
        failed.bind()
        failed.unbind()


def _disable(dc: samba.SambaDC, agent: Agent) -> None:
    with dc.admin() as admin:
        assert admin.modify(agent.dn, {"userAccountControl": [(MODIFY_REPLACE, ["514"])]}), admin.result


def _expire(dc: samba.SambaDC, agent: Agent) -> None:
    with dc.admin() as admin:
        assert admin.modify(agent.dn, {"accountExpires": [(MODIFY_REPLACE, ["130000000000000000"])]}), admin.result


def _delete(dc: samba.SambaDC, agent: Agent) -> None:
    with dc.admin() as admin:
        assert admin.delete(agent.dn), admin.result


def _leave_group(dc: samba.SambaDC, agent: Agent) -> None:
    with dc.admin() as admin:
        assert admin.modify(AGENTS, {"member": [(MODIFY_DELETE, [agent.dn])]}), admin.result


def _lock(dc: samba.SambaDC, agent: Agent) -> None:
    _wrong_binds(dc, agent.login, samba.LOCKOUT_THRESHOLD)


def _join_security_admins(dc: samba.SambaDC, agent: Agent) -> None:
    """The agent keeps its role and gains one that asks the second factor it signed in without."""
    with dc.admin() as admin:
        assert admin.modify(SECURITY_ADMINS, {"member": [(MODIFY_ADD, [agent.dn])]}), admin.result


ACCOUNT_CHANGES = {
    "disabled": (_disable, EndReason.ACCOUNT_DISABLED),
    "locked out": (_lock, EndReason.ACCOUNT_LOCKED),
    "account expired": (_expire, EndReason.ACCOUNT_STATE),
    "deleted": (_delete, EndReason.ACCOUNT_GONE),
    "removed from the group": (_leave_group, EndReason.ROLE_REMOVED),
    "joined a group that asks a second factor": (_join_security_admins, EndReason.SECOND_FACTOR_REQUIRED),
}


@pytest.mark.parametrize("change", ACCOUNT_CHANGES)
def test_an_account_change_in_active_directory_ends_the_session(
    portal: AdPortal, bystander: Agent, change: str
) -> None:
    apply, reason = ACCOUNT_CHANGES[change]
    agent = portal.agent()
    assert _revalidate(portal).ended == 0  # both sessions pass while nothing has changed
    apply(portal.samba, agent)
    report = _revalidate(portal)
    ended = _session(portal, agent)
    assert (ended.state, ended.end_reason) == (SessionState.ENDING, reason)
    assert _ending_audited(portal, agent) == [reason.value]
    assert report.ended == 1 and not report.directory_unavailable
    assert _session(portal, bystander).state is SessionState.ACTIVE


def test_a_revoked_certificate_ends_the_session(portal: AdPortal, bystander: Agent) -> None:
    agent = portal.agent()
    with session_scope(portal.engine) as db:
        pki.revoke(
            db,
            portal.authority,
            agent.serial,
            "keyCompromise",
            actor=pki.Actor("admin"),
            now=datetime.now(UTC),
            crl_validity=timedelta(hours=1),
        )
    assert _revalidate(portal).ended == 1
    assert _session(portal, agent).end_reason is EndReason.CERTIFICATE_REVOKED
    assert _ending_audited(portal, agent) == [EndReason.CERTIFICATE_REVOKED.value]
    assert _session(portal, bystander).state is SessionState.ACTIVE


def test_an_expired_certificate_ends_the_session(portal: AdPortal) -> None:
    agent = portal.agent()
    assert _revalidate(portal, now=agent.certificate_expires - timedelta(minutes=1)).ended == 0
    _revalidate(portal, now=agent.certificate_expires + timedelta(seconds=1))
    assert _session(portal, agent).end_reason is EndReason.CERTIFICATE_EXPIRED
    assert _ending_audited(portal, agent) == [EndReason.CERTIFICATE_EXPIRED.value]


def _outages(portal: AdPortal) -> int:
    with session_scope(portal.engine) as db:
        rows = db.exec(
            select(AuditEvent).where(
                col(AuditEvent.action) == "session.revalidate", col(AuditEvent.outcome) == "directory_unavailable"
            )
        )
        return len(rows.all())


def test_an_outage_is_reported_and_survived_and_the_next_run_catches_up(portal: AdPortal) -> None:
    """The sessions are kept through the outage (the documented choice), the outage leaves an audit row, and the
    first run with the directory back ends what changed during it."""
    agent = portal.agent()
    _disable(portal.samba, agent)
    unreachable = open_directory(portal.samba.settings(servers=[f"ldaps://127.0.0.1:{free_port()}"]))
    before = _outages(portal)
    try:
        report = _revalidate(portal, unreachable)
    finally:
        unreachable.close()
    assert report.directory_unavailable and report.ended == 0
    assert _outages(portal) == before + 1
    assert _session(portal, agent).state is SessionState.ACTIVE
    with httpx.Client(base_url=portal.base_url) as client:
        assert client.get("/healthz").status_code == 200  # the gateway serves on
    back = _revalidate(portal)
    assert not back.directory_unavailable
    assert _session(portal, agent).end_reason is EndReason.ACCOUNT_DISABLED
