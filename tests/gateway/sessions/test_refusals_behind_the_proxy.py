"""Behind the reverse proxy the refusals' audit rows name the browser's address (what the proven proxy forwarded),
not the proxy's own: an investigator reading the log must find the person's address, not 127.0.0.1."""

import httpx
from sqlmodel import col, select

from gateway.audit.models import AuditEvent
from gateway.db import session_scope
from tests.gateway.sessions.conftest import Portal, sign_in

BROWSER = "198.51.100.7"
"""The address ``Portal.proxy_headers`` forwards; the proxy itself (the test client) connects from 127.0.0.1."""


def _last(portal: Portal, action: str, outcome: str) -> AuditEvent:
    with session_scope(portal.engine) as db:
        query = select(AuditEvent).where(AuditEvent.action == action, AuditEvent.outcome == outcome)
        event = db.exec(query.order_by(col(AuditEvent.seq).desc())).first()
    assert event is not None
    return event


def _agent_through_the_proxy(portal: Portal, client: httpx.Client) -> None:
    headers = portal.proxy_headers("agent1")
    assert sign_in(client, "agent1", headers=headers).status_code == 303
    client.headers.update(headers)


def test_a_missing_role_refusal_names_the_browsers_address(portal: Portal) -> None:
    with portal.client() as client:
        _agent_through_the_proxy(portal, client)
        assert client.get("/supervisor", headers={"accept": "text/html"}).status_code == 403
    assert _last(portal, "request.refused", "role_supervisor_missing").source == BROWSER


def test_a_csrf_refusal_names_the_browsers_address(portal: Portal) -> None:
    with portal.client() as client:
        _agent_through_the_proxy(portal, client)
        assert client.post("/logout", data={"csrf": "not-the-sessions"}).status_code == 403
    assert _last(portal, "request.refused", "csrf").source == BROWSER


def test_a_login_body_that_is_not_the_form_names_the_browsers_address(portal: Portal) -> None:
    with portal.client() as client:
        answer = client.post("/login", json={"username": "agent1"}, headers=portal.proxy_headers("agent1"))
    assert answer.status_code == 415
    assert _last(portal, "session.login", "login_form_only").source == BROWSER
