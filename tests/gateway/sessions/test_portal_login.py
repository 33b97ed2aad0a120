"""Signing in to the portal: every refusal has its reason and its audit row; a success rotates a fresh cookie."""

import json

import httpx
import pytest
from sqlmodel import col, select

from gateway.audit.models import AuditEvent
from gateway.db import session_scope
from gateway.sessions.models import HomeSession
from tests.gateway.sessions.conftest import Portal, page_error, sign_in


def _last_login_outcome(portal: Portal, login: str) -> str:
    with session_scope(portal.engine) as db:
        event = db.exec(
            select(AuditEvent)
            .where(AuditEvent.action == "session.login", AuditEvent.actor == login)
            .order_by(col(AuditEvent.seq).desc())
        ).first()
    assert event is not None
    return event.outcome


def test_wrong_password_is_refused_with_its_reason(portal: Portal) -> None:
    with portal.client() as client:
        answer = sign_in(client, "sup1", "not-the-password")
    assert answer.status_code == 401
    assert page_error(answer) == "User name or password is wrong."
    assert _last_login_outcome(portal, "sup1") == "directory.wrong_password"


def test_supervisor_signs_in_with_password_and_lands_on_seats(portal: Portal) -> None:
    with portal.client() as client:
        answer = sign_in(client, "sup1")
        assert answer.status_code == 303 and answer.headers["location"] == "/supervisor"  # straight there, not via /
        cookie = answer.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie
        home = client.get("/", headers={"accept": "text/html"})
        assert home.headers["location"] == "/supervisor"
        seats = client.get("/supervisor", headers={"accept": "text/html"})
    assert seats.status_code == 200 and 'id="live-count"' in seats.text
    assert _last_login_outcome(portal, "sup1") == "success"


def test_agent_without_certificate_is_refused(portal: Portal) -> None:
    with portal.client() as client:
        answer = sign_in(client, "agent1")
    assert answer.status_code == 401
    assert "client certificate is required" in page_error(answer)
    assert _last_login_outcome(portal, "agent1") == "certificate_missing"


def test_agent_with_own_certificate_through_trusted_proxy_signs_in(portal: Portal) -> None:
    with portal.client() as client:
        answer = sign_in(client, "agent1", headers=portal.proxy_headers("agent1"))
        assert answer.status_code == 303, page_error(answer)
        workspace = client.get("/agent", headers={"accept": "text/html"})
    assert "Customer console" in workspace.text
    assert "198.51.100.7" in workspace.text  # the address the proxy saw, not the proxy's


def _ignored_forwardings(portal: Portal) -> list[AuditEvent]:
    with session_scope(portal.engine) as db:
        return list(db.exec(select(AuditEvent).where(AuditEvent.action == "proxy.forwarding_ignored")).all())


@pytest.mark.parametrize("proof", [None, "a-guess-at-the-proxy-secret-0123456789"])
def test_forwarded_certificate_from_a_local_process_that_is_not_the_proxy_is_ignored_and_audited(
    portal: Portal, proof: str | None
) -> None:
    """A process on 127.0.0.1 (the proxy's own address) forwards a victim's public certificate and an address."""
    forged = {**portal.proxy_headers("agent1")}
    del forged["X-Sohogw-Proxy-Secret"]
    if proof is not None:
        forged["X-Sohogw-Proxy-Secret"] = proof
    with portal.client() as client:
        answer = sign_in(client, "agent1", headers=forged)
    assert answer.status_code == 401
    assert _last_login_outcome(portal, "agent1") == "certificate_missing"
    ignored = _ignored_forwardings(portal)
    assert {event.target for event in ignored} == {"/login"}
    assert all(event.source == "127.0.0.1" for event in ignored)
    assert {event.outcome for event in ignored} == {"proxy_secret_missing" if proof is None else "proxy_secret_wrong"}
    assert "x-ssl-client-cert" in ignored[-1].detail and "x-forwarded-for" in ignored[-1].detail


def test_forwarded_certificate_with_the_right_secret_from_an_address_not_the_proxys_is_ignored_and_audited(
    portal: Portal,
) -> None:
    """Whoever sniffed the secret on the proxy's hop connects to the node directly, from an address not among
    ``proxy_addresses`` (127.0.0.2 here; the proxy's is 127.0.0.1), with a victim's public certificate."""
    elsewhere = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(base_url=portal.base_url, transport=elsewhere, timeout=portal.client_timeout) as client:
        answer = sign_in(client, "agent1", headers=portal.proxy_headers("agent1"))
    assert answer.status_code == 401
    assert _last_login_outcome(portal, "agent1") == "certificate_missing"
    ignored = _ignored_forwardings(portal)
    assert {(event.source, event.outcome, event.target) for event in ignored} == {
        ("127.0.0.2", "proxy_address_not_allowed", "/login")
    }
    assert "x-ssl-client-cert" in ignored[-1].detail


def test_forwarded_address_without_proof_is_not_the_session_address(portal: Portal) -> None:
    with portal.client() as client:
        answer = sign_in(client, "sup1", headers={"X-Forwarded-For": "198.51.100.7"})
        assert answer.status_code == 303, page_error(answer)
    with session_scope(portal.engine) as db:
        started = db.exec(select(HomeSession).where(HomeSession.login == "sup1")).one()
    assert started.source_ip == "127.0.0.1"
    assert _ignored_forwardings(portal)


def test_another_agents_certificate_is_refused(portal: Portal) -> None:
    with portal.client() as client:
        answer = sign_in(client, "agent1", headers=portal.proxy_headers("agent2"))
    assert answer.status_code == 401
    assert _last_login_outcome(portal, "agent1") == "certificate_mismatch"


def test_account_outside_every_soho_group_is_refused_before_its_password_is_tried(portal: Portal) -> None:
    """No role: the policy requires a certificate (it fails closed), so without one the answer is an agent's, and
    the same for a right password as for a wrong one."""
    with portal.client() as client:
        right, wrong = sign_in(client, "outsider"), sign_in(client, "outsider", "not-the-password")
    assert right.status_code == wrong.status_code == 401
    assert page_error(right) == page_error(wrong) and "client certificate is required" in page_error(right)
    with session_scope(portal.engine) as db:
        rows = db.exec(select(AuditEvent).where(AuditEvent.actor == "outsider")).all()
    assert [(row.outcome, json.loads(row.detail)["roles"]) for row in rows] == [("certificate_missing", [])] * 2


def test_tries_without_a_certificate_do_not_lock_the_agent_out(portal: Portal) -> None:
    limit = portal.settings.portal.throttle_per_account
    with portal.client() as guesser, portal.client() as agent:
        for attempt in range(limit + 1):
            assert sign_in(guesser, "agent1", f"guess-{attempt}").status_code == 401
        answer = sign_in(agent, "agent1", headers=portal.proxy_headers("agent1"))
    assert answer.status_code == 303, page_error(answer)


def test_refusals_are_shown_in_chinese_when_the_browser_asks(portal: Portal) -> None:
    with portal.client() as client:
        answer = sign_in(client, "sup1", "wrong", headers={"accept-language": "zh-CN,zh;q=0.9"})
    assert page_error(answer) == "用户名或密码错误。"
    assert '<html lang="zh-CN">' in answer.text


def test_repeated_failures_throttle_the_account_even_with_the_right_password(portal: Portal) -> None:
    with portal.client() as client:
        for _ in range(5):
            assert sign_in(client, "sup1", "wrong").status_code == 401
        answer = sign_in(client, "sup1")
    assert answer.status_code == 429
    assert "Too many" in page_error(answer)


def test_login_form_without_its_csrf_token_is_refused(portal: Portal) -> None:
    with portal.client() as client:
        client.get("/login")
        answer = client.post("/login", data={"username": "sup1", "password": "sup-one-pw", "csrf": "forged"})
    assert answer.status_code == 403
    assert answer.json()["error"] == "csrf"


@pytest.mark.parametrize(
    "referer",
    [
        "https://evil.example/phish",
        "https://evil.example//evil.example/phish",
        "https://evil.example/\\evil.example/phish",
        "{base}//evil.example/phish",
        "{base}/\\evil.example/phish",
        "//evil.example/phish",
    ],
)
def test_language_switch_returns_to_our_page_and_never_to_another_site(portal: Portal, referer: str) -> None:
    with portal.client() as client:
        back = client.get("/lang/zh-CN", headers={"referer": f"{portal.base_url}/login?x=1"})
        away = client.get("/lang/en", headers={"referer": referer.format(base=portal.base_url)})
    assert back.headers["location"] == "/login?x=1"
    assert back.cookies.get("sohogw_lang") == "zh-CN"
    assert away.headers["location"] == "/"
