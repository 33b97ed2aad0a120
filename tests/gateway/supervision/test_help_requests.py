"""An agent asks for help: a flag on the wall (Chromium) until a supervisor takes it; audited; counted in reports."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect
from sqlmodel import Session, col, select

from gateway.audit.models import AuditEvent
from gateway.db import session_scope
from gateway.sessions.models import EndReason
from gateway.sessions.service import end_session
from gateway.supervision.errors import NoLiveAgent
from gateway.supervision.help import close_unanswered, request_help
from gateway.supervision.models import HelpRequest
from tests.gateway.sessions.conftest import PASSWORDS
from tests.gateway.supervision.conftest import SupervisedPortal, add_session, signed_in
from tests.support.browser import chromium, sign_in_page

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def _help_audit(db: Session) -> list[tuple[str, str, str]]:
    query = (
        select(AuditEvent).where(col(AuditEvent.action).startswith("supervision.help")).order_by(col(AuditEvent.seq))
    )
    return [(event.action, event.actor, event.outcome) for event in db.exec(query).all()]


def test_asking_twice_keeps_one_request_and_an_ended_session_leaves_it_unanswered(db: Session) -> None:
    agent = add_session(db, "agent1", created_at=T0)
    first = request_help(db, agent.id, "phone", T0 + timedelta(minutes=1))
    assert request_help(db, agent.id, "portal", T0 + timedelta(minutes=2)).id == first.id
    assert close_unanswered(db, T0 + timedelta(minutes=3)) == 0  # the session is live: the request stays open
    end_session(db, agent, EndReason.LOGOUT, actor="agent1", now=T0 + timedelta(minutes=4))
    assert close_unanswered(db, T0 + timedelta(minutes=5)) == 1
    row = db.get(HelpRequest, first.id)
    assert row is not None and row.closed_at is not None and row.answered_at is None and row.source == "phone"
    assert _help_audit(db) == [
        ("supervision.help.request", "agent1", "requested"),
        ("supervision.help.close", "system", "unanswered"),
    ]
    with pytest.raises(NoLiveAgent):
        request_help(db, agent.id, "phone", T0 + timedelta(minutes=6))
    supervisor = add_session(db, "sup1", created_at=T0, roles="supervisor", groups=["SOHO-Supervisors"])
    with pytest.raises(NoLiveAgent):
        request_help(db, supervisor.id, "phone", T0)


@pytest.mark.e2e
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_need_help_flags_the_wall_until_a_supervisor_takes_it(portal: SupervisedPortal) -> None:
    with signed_in(portal, "agent1") as agent1, signed_in(portal, "agent2"), chromium() as browser:
        agent_page = browser.new_context().new_page()
        agent_page.context.add_cookies(
            [{"name": name, "value": value, "url": portal.base_url} for name, value in agent1.cookies.items()]
        )
        wall = browser.new_context().new_page()
        sign_in_page(wall, "sup1", PASSWORDS["sup1"], portal.base_url)
        wall.goto(f"{portal.base_url}/supervision/wall")
        expect(wall.locator("#wall-status")).to_have_attribute("data-state", "live")
        tile = wall.locator('#wall-rows [data-login="agent1"]')
        expect(tile.locator(".help-flag")).to_have_count(0)

        agent_page.goto(f"{portal.base_url}/agent/work-state")
        agent_page.click("#need-help")
        expect(agent_page.locator("#help-pending")).to_be_visible()
        expect(tile.locator(".help-flag")).to_contain_text("Needs help", timeout=5000)
        expect(wall.locator('#wall-summary [data-count="help"] b')).to_have_text("1")
        expect(wall.locator('#wall-rows [data-login="agent2"] .help-flag')).to_have_count(0)
        wall.select_option("#wall-sort", "help")
        assert wall.locator("#wall-rows .tile").first.get_attribute("data-login") == "agent1"

        tile.locator("button.answer-help").click()
        expect(wall.locator('#wall-rows [data-login="agent1"] .help-flag')).to_have_count(0, timeout=5000)
        agent_page.reload()
        expect(agent_page.locator("#need-help")).to_be_visible()
        report = wall.request.get(f"{portal.base_url}/supervision/reports.csv").text()
    lines = {(row["scope"], row["name"]): row for row in csv.DictReader(io.StringIO(report))}
    assert (lines[("agent", "agent1")]["help_answered"], lines[("agent", "agent1")]["help_unanswered"]) == ("1", "0")
    assert lines[("agent", "agent2")]["help_answered"] == "0"
    with session_scope(portal.engine) as db:
        assert _help_audit(db) == [
            ("supervision.help.request", "agent1", "requested"),
            ("supervision.help.answer", "sup1", "answered"),
        ]
