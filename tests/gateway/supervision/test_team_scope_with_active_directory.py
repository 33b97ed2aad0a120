"""Team scope against a real Samba AD DC: two teams, two supervisors and a QA supervisor, all by AD group.

Each supervisor sees only their own team on the wall (in Chromium), in the wall's event stream, in alerts and in
reports; the other team's agent answers 404 on every direct URL, as an unknown session does, and each refusal is
audited. The QA group sees both teams: the positive control that the rows exist and are sent at all.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from ldap3 import MODIFY_ADD
from playwright.sync_api import expect
from sqlalchemy import Engine
from sqlmodel import col, select

from certs.authority import init_authority
from gateway.app import create_app
from gateway.audit.models import AuditEvent
from gateway.db import session_scope
from gateway.directory import open_directory
from gateway.pki import service as pki
from gateway.policies.service import import_policy
from gateway.sessions.models import HomeSession, SessionState
from gateway.settings import load_settings
from gateway.supervision.alerts import check_alerts
from gateway.supervision.models import Alert
from gateway.supervision.settings import SupervisionSettings
from tests.directory import samba
from tests.gateway.sessions.conftest import WG_KEYS, csrf_of, page_error
from tests.support.browser import chromium, sign_in_page
from tests.support.portal import PROXY_ADDRESSES, PROXY_SECRET, sign_in
from tests.support.server import serving

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]

NORTH_AGENT, SOUTH_AGENT = "scope.agent.n", "scope.agent.s"
NORTH_SUPERVISOR, SOUTH_SUPERVISOR, QA = "scope.sup.n", "scope.sup.s", "scope.qa"
GROUPS = {
    "Scope-Team-North": NORTH_AGENT,
    "Scope-Team-South": SOUTH_AGENT,
    "Scope-Sup-North": NORTH_SUPERVISOR,
    "Scope-Sup-South": SOUTH_SUPERVISOR,
    "Scope-QA": QA,
}
SETTINGS = SupervisionSettings(wall_tick_seconds=0.5, break_max_minutes=0.001)


def _policy() -> str:
    """Agents and supervisors by team group DN; each supervisor group mapped to its team, QA to every team."""
    dn = samba.group_dn
    return f"""
version: 1
apps:
  - id: customer-console
    title: Customer console
    backend: x11
    command: [python, -m, desktop_broker.apps.customer_console]
roles:
  supervisor: {{require_client_certificate: false}}
groups:
  "{dn("Scope-Team-North")}": {{roles: [agent], apps: [customer-console]}}
  "{dn("Scope-Team-South")}": {{roles: [agent], apps: [customer-console]}}
  "{dn("Scope-Sup-North")}": {{roles: [supervisor]}}
  "{dn("Scope-Sup-South")}": {{roles: [supervisor]}}
  "{dn("Scope-QA")}": {{roles: [supervisor]}}
team_scope:
  teams:
    "{dn("Scope-Team-North")}": ["{dn("Scope-Sup-North")}"]
    "{dn("Scope-Team-South")}": ["{dn("Scope-Sup-South")}"]
  all_teams: ["{dn("Scope-QA")}"]
"""


def _seed_teams(dc: samba.SambaDC) -> None:
    """The five people and their groups, through LDAP as an admin would (kept for the rest of the run)."""
    conn = dc.admin()
    try:
        for group, login in GROUPS.items():
            if conn.search(samba.group_dn(group), "(objectClass=group)", search_scope="BASE"):
                continue
            user = samba._add_user(conn, login)
            conn.add(samba.group_dn(group), attributes={"objectClass": ["group"], "sAMAccountName": group})
            conn.modify(samba.group_dn(group), {"member": [(MODIFY_ADD, [user])]})
    finally:
        conn.unbind()


@dataclass
class ScopedPortal:
    base_url: str
    engine: Engine
    agent_headers: dict[str, dict[str, str]]

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, follow_redirects=False, timeout=10)

    def signed_in(self, client: httpx.Client, login: str) -> None:
        answer = sign_in(client, login, samba.PASSWORD, self.agent_headers.get(login))
        assert answer.status_code == 303, page_error(answer)

    def session_id(self, login: str) -> str:
        with session_scope(self.engine) as db:
            query = select(HomeSession.id).where(HomeSession.login == login, HomeSession.state == SessionState.ACTIVE)
            return db.exec(query).one()


@pytest.fixture
def portal(samba_dc: samba.SambaDC, tmp_path: Path, db_url: str, engine: Engine) -> Iterator[ScopedPortal]:
    _seed_teams(samba_dc)
    settings = load_settings(
        data_dir=tmp_path,
        database_url=db_url,
        ca={"passphrase": "scope-test"},
        portal={"proxy_secret": PROXY_SECRET, "proxy_addresses": PROXY_ADDRESSES},
        supervision=SETTINGS,
    )
    now = datetime.now(UTC)
    authority = init_authority(settings.ca_directory, "scope-test", "Corp Example", now)
    headers = {}
    with session_scope(engine) as db:
        for login, key in zip((NORTH_AGENT, SOUTH_AGENT), WG_KEYS.values(), strict=True):
            issued = pki.issue_agent_certificate(
                db,
                authority,
                upn=f"{login}@{samba.REALM.lower()}",
                wireguard_key=key,
                person_id=None,
                actor=pki.Actor("test"),
                now=now,
                lifetime=timedelta(days=1),
                urls=pki.publication_urls("http://x"),
            )
            pem = issued.cert.public_bytes(serialization.Encoding.PEM).decode()
            headers[login] = {"X-SSL-Client-Cert": quote(pem), "X-Sohogw-Proxy-Secret": PROXY_SECRET}
        import_policy(db, _policy(), actor="test", source="", now=now)
    app = create_app(settings, engine=engine, authority=authority, directory=open_directory(samba_dc.settings()),
                     run_jobs=False)  # fmt: skip
    with serving(app) as base_url:
        yield ScopedPortal(base_url, engine, headers)


@pytest.fixture
def everyone(portal: ScopedPortal) -> Iterator[dict[str, httpx.Client]]:
    """All five signed in; both agents on a break (so each has a state change and a break-too-long alert)."""
    clients = {login: portal.client() for login in GROUPS.values()}
    try:
        for login, client in clients.items():
            portal.signed_in(client, login)
        for agent in (NORTH_AGENT, SOUTH_AGENT):
            page = clients[agent].get("/agent/work-state")
            form = {"csrf": csrf_of(page), "state": "break", "reason": "lunch"}
            assert clients[agent].post("/agent/work-state", data=form).status_code == 303
        yield clients
    finally:
        for client in clients.values():
            client.close()


def _refusals(engine: Engine, actor: str) -> list[tuple[str, str]]:
    with session_scope(engine) as db:
        query = select(AuditEvent).where(AuditEvent.actor == actor, AuditEvent.action == "supervision.scope")
        return [(row.outcome, row.target) for row in db.exec(query.order_by(col(AuditEvent.seq))).all()]


def test_each_supervisor_sees_only_their_team_on_the_wall(portal: ScopedPortal, everyone: dict) -> None:
    with chromium() as browser:
        for supervisor, mine, theirs in (
            (NORTH_SUPERVISOR, [NORTH_AGENT], [SOUTH_AGENT]),
            (SOUTH_SUPERVISOR, [SOUTH_AGENT], [NORTH_AGENT]),
            (QA, [NORTH_AGENT, SOUTH_AGENT], []),
        ):
            page = browser.new_context().new_page()
            sign_in_page(page, supervisor, samba.PASSWORD, portal.base_url)
            page.goto(f"{portal.base_url}/supervision/wall")
            expect(page.locator("#wall-status")).to_have_attribute("data-state", "live")
            expect(page.locator('#wall-summary [data-count="total"]')).to_contain_text(str(len(mine)))
            for login in mine:
                expect(page.locator(f'#wall-rows [data-login="{login}"]')).to_have_count(1)
            for login in theirs:
                expect(page.locator(f'#wall-rows [data-login="{login}"]')).to_have_count(0)
            page.context.close()


def _events(response: httpx.Response) -> Iterator[tuple[str, dict]]:
    event = ""
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield event, json.loads(line.removeprefix("data: "))


def test_the_wall_stream_carries_only_the_supervisors_team(portal: ScopedPortal, everyone: dict) -> None:
    north = everyone[NORTH_SUPERVISOR]
    with north.stream("GET", "/supervision/wall/events") as response:
        events = _events(response)
        kind, snapshot = next(events)
        assert kind == "snapshot"
        assert [row["login"] for row in snapshot["rows"]] == [NORTH_AGENT]
        assert snapshot["summary"]["total"] == 1
        # The other team changes first, then this team: the first diff this stream gets holds this team only.
        for agent in (SOUTH_AGENT, NORTH_AGENT):
            page = everyone[agent].get("/agent/work-state")
            form = {"csrf": csrf_of(page), "state": "ready"}
            assert everyone[agent].post("/agent/work-state", data=form).status_code == 303
        kind, change = next(events)
        assert kind == "diff"
        assert [row["login"] for row in change["upsert"]] == [NORTH_AGENT]
        assert not any("policy_groups" in row for row in change["upsert"])


def test_the_other_teams_agent_answers_404_like_an_unknown_one(portal: ScopedPortal, everyone: dict) -> None:
    north = everyone[NORTH_SUPERVISOR]
    page = north.get("/supervision/wall")
    own, other = portal.session_id(NORTH_AGENT), portal.session_id(SOUTH_AGENT)
    watch_own = north.post(f"/supervision/watch/{own}", data={"csrf": csrf_of(page)})
    # In scope: the request passes the scope and reaches the seats domain, which runs no seats in this portal.
    assert watch_own.json()["error"] == "screen_viewing_unavailable"
    watch_other = north.post(f"/supervision/watch/{other}", data={"csrf": csrf_of(page)})
    unknown = north.post("/supervision/watch/no-such-session", data={"csrf": csrf_of(page)})
    assert watch_other.status_code == unknown.status_code == 404
    assert watch_other.json() == unknown.json()  # one answer: no oracle for who is logged in elsewhere
    assert _refusals(portal.engine, NORTH_SUPERVISOR) == [("out_of_scope", SOUTH_AGENT), ("no_live_agent", "")]
    qa = everyone[QA]
    watch_by_qa = qa.post(f"/supervision/watch/{other}", data={"csrf": csrf_of(qa.get("/supervision/wall"))})
    assert watch_by_qa.json()["error"] == "screen_viewing_unavailable"


def test_alerts_and_reports_hold_only_the_supervisors_team(portal: ScopedPortal, everyone: dict) -> None:
    with session_scope(portal.engine) as db:
        check_alerts(db, SETTINGS, datetime.now(UTC) + timedelta(minutes=1))
        alert_of = {alert.login: alert.id for alert in db.exec(select(Alert)).all()}
    assert set(alert_of) == {NORTH_AGENT, SOUTH_AGENT}
    for supervisor, mine, theirs in (
        (NORTH_SUPERVISOR, NORTH_AGENT, SOUTH_AGENT),
        (SOUTH_SUPERVISOR, SOUTH_AGENT, NORTH_AGENT),
    ):
        client = everyone[supervisor]
        alerts = client.get("/supervision/alerts").text
        assert mine in alerts and theirs not in alerts
        report = client.get("/supervision/reports.csv").text
        assert mine in report and theirs not in report
        page = client.get("/supervision/alerts")
        refused = client.post(f"/supervision/alerts/{alert_of[theirs]}/ack", data={"csrf": csrf_of(page)})
        assert refused.status_code == 404
        accepted = client.post(f"/supervision/alerts/{alert_of[mine]}/ack", data={"csrf": csrf_of(page)})
        assert accepted.status_code == 303
    qa_report = everyone[QA].get("/supervision/reports.csv").text
    assert NORTH_AGENT in qa_report and SOUTH_AGENT in qa_report
    with session_scope(portal.engine) as db:
        query = select(AuditEvent.outcome).where(AuditEvent.action == "supervision.alert.acknowledge")
        assert sorted(db.exec(query).all()) == ["acknowledged", "acknowledged", "out_of_scope", "out_of_scope"]
