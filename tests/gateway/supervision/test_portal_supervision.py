"""Supervision through the portal on a real socket: platform API, watching, bulletins, reports, metrics, surge."""

import json
import re
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import Session, select

from gateway.audit.models import AuditEvent
from gateway.db import session_scope
from gateway.notify.sms import SmsSettings
from gateway.sessions.models import HomeSession
from gateway.supervision.monitoring import ScreenViewer
from gateway.supervision.platform import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from gateway.supervision.settings import MailSettings, SupervisionSettings
from gateway.voice.models import SatisfactionSurvey, SurveyState
from tests.gateway.supervision.conftest import SmsGateway, SmtpServer, SupervisedPortal, post_form, signed_in
from tests.support.portal import sign_in

SECRET = "platform-shared-secret"


@pytest.fixture
def supervision(smtp_server: SmtpServer, sms_gateway: SmsGateway) -> SupervisionSettings:
    return SupervisionSettings(
        wall_tick_seconds=0.5,
        platform_secret=SECRET,
        mail=MailSettings(host="127.0.0.1", port=smtp_server.port),
        sms=SmsSettings(url=sms_gateway.url),
    )


def _signed(body: dict[str, object], secret: str = SECRET, skew: int = 0) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    timestamp = int(datetime.now(UTC).timestamp()) + skew
    return raw, {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: sign(secret, timestamp, raw)}


def test_platform_sets_work_state_only_with_a_valid_signature(portal: SupervisedPortal) -> None:
    with signed_in(portal, "agent1"), portal.client() as platform:
        body, headers = _signed({"login": "agent1", "state": "on_call"})
        accepted = platform.post("/supervision/api/work-state", content=body, headers=headers)
        assert accepted.status_code == 200 and accepted.json()["state"] == "on_call"
        body, headers = _signed({"login": "agent1", "state": "ready"}, secret="guessed")
        assert platform.post("/supervision/api/work-state", content=body, headers=headers).status_code == 401
        body, headers = _signed({"login": "agent1", "state": "ready"}, skew=-3600)
        assert platform.post("/supervision/api/work-state", content=body, headers=headers).status_code == 401
        late = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        body, headers = _signed({"login": "agent1", "state": "ready", "at": late})
        assert platform.post("/supervision/api/work-state", content=body, headers=headers).status_code == 409
        body, headers = _signed({"login": "nobody", "state": "ready"})
        assert platform.post("/supervision/api/work-state", content=body, headers=headers).status_code == 404


@pytest.fixture
def asked_to_view() -> list[tuple[str, str, str]]:
    """Each (agent session, supervisor, URL) the stand-in viewer was asked for."""
    return []


@pytest.fixture
def screen_viewer(asked_to_view: list[tuple[str, str, str]]) -> ScreenViewer | None:
    """A stand-in for the seat broker's screen viewer, given to the app (the real one, with a real seat, is exercised
    in tests/gateway/seats/test_view_only_watch_in_browser.py). It records which session was asked for by whom and
    answers with a URL no template could guess, so the page is seen to embed what the seats domain answered."""

    def viewer(db: Session, agent: HomeSession, supervisor: str) -> str:
        url = f"/seats/view?watch={secrets.token_urlsafe(8)}"
        asked_to_view.append((agent.id, supervisor, url))
        return url

    return viewer


def _agent_session_id(portal: SupervisedPortal) -> str:
    with session_scope(portal.engine) as db:
        return db.exec(select(HomeSession.id).where(HomeSession.login == "agent1")).one()


def test_watching_a_screen_asks_the_seats_for_that_session_is_audited_and_told_to_the_agent(
    portal: SupervisedPortal, asked_to_view: list[tuple[str, str, str]]
) -> None:
    with signed_in(portal, "agent1") as agent, signed_in(portal, "sup1") as supervisor:
        session_id = _agent_session_id(portal)
        assert "is watching your screen" not in agent.get("/agent/work-state").text
        page = post_form(supervisor, "/supervision/wall", f"/supervision/watch/{session_id}")
        [(asked_for, asked_by, url)] = asked_to_view
        assert (asked_for, asked_by) == (session_id, "sup1")
        assert page.status_code == 200 and f'src="{url}"' in page.text
        assert "sup1 is watching your screen" in agent.get("/agent/work-state").text
        watch_id = re.search(r"/supervision/watch/(\d+)/end", page.text).group(1)  # type: ignore[union-attr]
        ended = supervisor.post(
            f"/supervision/watch/{watch_id}/end",
            data={"csrf": re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)},
        )  # type: ignore[union-attr]
        assert ended.status_code == 303
        assert "is watching your screen" not in agent.get("/agent/work-state").text
    with session_scope(portal.engine) as db:
        audit = db.exec(select(AuditEvent).where(AuditEvent.action.startswith("supervision.watch"))).all()  # type: ignore[attr-defined]
    assert [(a.action, a.actor, a.target, a.outcome) for a in audit] == [
        ("supervision.watch.start", "sup1", "agent1", "started"),
        ("supervision.watch.end", "sup1", "agent1", "ended"),
    ]


@pytest.mark.parametrize("screen_viewer", [None])  # the app's own viewer: the seat broker, not running here
def test_watching_without_a_seat_broker_says_so(portal: SupervisedPortal) -> None:
    with signed_in(portal, "agent1"), signed_in(portal, "sup1") as supervisor:
        answer = post_form(supervisor, "/supervision/wall", f"/supervision/watch/{_agent_session_id(portal)}")
    assert answer.status_code == 503
    assert answer.json()["message"] == "no seat broker runs on this gateway node, so no screen can be watched"


def test_bulletins_posted_by_a_supervisor_reach_the_agent_and_reports_count_the_session(
    portal: SupervisedPortal,
) -> None:
    with signed_in(portal, "sup1") as supervisor, signed_in(portal, "agent1") as agent:
        post_form(
            supervisor,
            "/supervision/bulletins",
            "/supervision/bulletins",
            kind="note",
            title="Storm script",
            body="Use script S-7 for outage calls.",
        )
        assert "Storm script" in agent.get("/agent/bulletins").text
        assert "Use script S-7" in agent.get("/agent/work-state").text
        post_form(agent, "/agent/work-state", "/agent/work-state", state="break", reason="rest")
        assert 'data-state="break"' in agent.get("/agent/work-state").text
        csv_text = supervisor.get("/supervision/reports.csv?period=day").text
        html = supervisor.get("/supervision/reports?period=month").text
    header, *lines = csv_text.strip().splitlines()
    assert header.startswith("period,scope,name,location,logged_in_seconds,break_seconds,sessions")
    agent_line = next(line.split(",") for line in lines if ",agent,agent1," in line)
    assert (agent_line[3], agent_line[6]) == ("home", "1")
    logged_in, on_break = float(agent_line[4]), float(agent_line[5])
    assert 0 < on_break < logged_in  # the break began after the sign-in and runs until the report
    assert 'id="chart-agents"' in html and 'data-name="Team-North"' in html


def test_the_report_page_shows_the_agents_average_satisfaction_and_response_rate(portal: SupervisedPortal) -> None:
    with signed_in(portal, "agent1"), signed_in(portal, "sup1") as supervisor:
        session_id, now = _agent_session_id(portal), datetime.now(UTC)
        with session_scope(portal.engine) as db:  # two surveys sent after agent1's calls, one answered with a 4
            for call_event_id, score in [(1, 4), (2, None)]:
                db.add(
                    SatisfactionSurvey(
                        call_event_id=call_event_id,
                        session_id=session_id,
                        person_id="test:agent1",
                        login="agent1",
                        customer_e164="+8613900001111",
                        state=SurveyState.SENT,
                        score=score,
                        created_at=now,
                        sent_at=now,
                    )
                )
        html = supervisor.get("/supervision/reports?period=day").text
    row = re.search(r'data-scope="agent" data-name="agent1" data-location="home">(.*?)</tr>', html, re.S)
    assert row is not None
    cell = re.search(r'class="satisfaction" data-sent="2" data-answered="1">(.*?)</td>', row.group(1), re.S)
    assert cell is not None and cell.group(1).strip() == "4.0 · 50 %"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus exposition, by name and labels, parsed by the client library's own parser."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_report_live_agents_logins_and_request_latency(portal: SupervisedPortal) -> None:
    with portal.client() as scraper:
        before = _samples(scraper.get("/metrics").text)
    with portal.client() as stranger:  # without the agent's certificate: refused before the password is tried
        assert sign_in(stranger, "agent1", "not-the-password").status_code == 401
    with signed_in(portal, "agent1"), portal.client() as scraper:
        after = _samples(scraper.get("/metrics").text)
    assert (before[("sohogw_live_agent_sessions", ())], after[("sohogw_live_agent_sessions", ())]) == (0, 1)
    logins = {labels: value for (name, labels), value in after.items() if name == "sohogw_logins_total"}
    assert logins == {(("outcome", "success"),): 1, (("outcome", "certificate_missing"),): 1}
    posted = ("method", "POST"), ("route", "/login"), ("status", "303")
    assert after[("sohogw_request_duration_seconds_count", posted)] >= 1


@pytest.mark.parametrize(
    "forwarded", [{"X-Forwarded-For": "203.0.113.9"}, {"Forwarded": "for=203.0.113.9"}, {"X-Real-IP": "203.0.113.9"}]
)
def test_metrics_refuse_a_request_that_came_through_a_proxy_on_loopback(
    portal: SupervisedPortal, forwarded: dict[str, str]
) -> None:
    with portal.client() as scraper:
        assert scraper.get("/metrics").status_code == 200
        refused = scraper.get("/metrics", headers=forwarded)
    assert refused.status_code == 403 and "sohogw_" not in refused.text


def test_surge_call_in_reaches_standby_agents_and_shows_who_came_online(
    portal: SupervisedPortal, smtp_server: SmtpServer, sms_gateway: SmsGateway
) -> None:
    with signed_in(portal, "sup1") as supervisor:
        post_form(
            supervisor,
            "/supervision/surge",
            "/supervision/standby",
            login="agent1",
            email="agent1@home.example",
            phone="+8613900139000",
        )
        post_form(supervisor, "/supervision/surge", "/supervision/standby", login="agent2", email="agent2@home.example")
        called = post_form(supervisor, "/supervision/surge", "/supervision/call-in", message="Storm: please log in")
        status_url = called.headers["location"]
        before = supervisor.get(status_url).text
        with signed_in(portal, "agent2"):
            after = supervisor.get(status_url).text
    mails = smtp_server.inbox.wait_for(2, timeout=5)
    assert sorted(mail["To"] for _, mail in mails) == ["agent1@home.example", "agent2@home.example"]
    assert [(body["to"], body["text"]) for _, body, _ in sms_gateway.received] == [
        ("+8613900139000", "Storm: please log in")
    ]
    assert 'data-login="agent2" data-online="no"' in before
    assert 'data-login="agent2" data-online="yes"' in after and 'data-login="agent1" data-online="no"' in after


def test_changes_to_the_standby_list_are_audited_with_the_supervisor_as_actor(portal: SupervisedPortal) -> None:
    with signed_in(portal, "sup1") as supervisor:
        saved = post_form(
            supervisor, "/supervision/surge", "/supervision/standby", login="agent1", email="agent1@home.example"
        )
        assert "agent1@home.example" in supervisor.get("/supervision/surge").text
        removed = post_form(supervisor, "/supervision/surge", "/supervision/standby/agent1/remove")
        assert (saved.status_code, removed.status_code) == (303, 303)
        assert "agent1@home.example" not in supervisor.get("/supervision/surge").text
    with session_scope(portal.engine) as db:
        rows = db.exec(
            select(AuditEvent).where(AuditEvent.action.startswith("supervision.standby."))  # type: ignore[attr-defined]
        ).all()
        audited = [(row.actor, row.action, row.target, row.outcome) for row in sorted(rows, key=lambda r: r.seq)]
    assert audited == [
        ("sup1", "supervision.standby.set", "agent1", "saved"),
        ("sup1", "supervision.standby.remove", "agent1", "removed"),
    ]


def test_surge_refuses_nonsense_on_its_page_keeping_what_was_typed(
    portal: SupervisedPortal, smtp_server: SmtpServer
) -> None:
    with signed_in(portal, "sup1") as supervisor:
        nobody = post_form(supervisor, "/supervision/surge", "/supervision/call-in", message="Storm: please log in")
        assert nobody.status_code == 422 and "Nobody is on standby, so nobody would be called in" in nobody.text
        assert "Storm: please log in</textarea>" in nobody.text
        typo = post_form(
            supervisor, "/supervision/surge", "/supervision/standby", login="agnet1", email="a@home.example"
        )
        assert typo.status_code == 422 and "There is no account &#34;agnet1&#34; in the directory" in typo.text
        assert 'value="agnet1"' in typo.text and 'value="a@home.example"' in typo.text
        local = post_form(supervisor, "/supervision/surge", "/supervision/standby", login="agent1", phone="139 0013")
        assert local.status_code == 422 and "is not a phone number in international form" in local.text
        assert 'value="139 0013"' in local.text
        assert "agent1" not in supervisor.get("/supervision/surge").text.split('id="standby"')[1].split("</table>")[0]
        post_form(supervisor, "/supervision/surge", "/supervision/standby", login="agent1", email="agent1@home.example")
        called = post_form(supervisor, "/supervision/surge", "/supervision/call-in", message="Storm")
        status = supervisor.get(called.headers["location"]).text
    assert '<td class="delivery">e-mail sent</td>' in status
    smtp_server.inbox.wait_for(1, timeout=5)
    with session_scope(portal.engine) as db:
        refusals = db.exec(select(AuditEvent).where(AuditEvent.outcome == "refused")).all()
        assert {row.action for row in refusals} >= {"supervision.call_in", "supervision.standby.set"}
