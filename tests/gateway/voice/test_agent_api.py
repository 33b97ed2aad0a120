"""The agent's voice API over real HTTP: numbers with a code sent through the real SMS adapter, ready, leg."""

import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import Engine

from gateway.clock import utcnow
from gateway.db import session_scope
from gateway.notify.sms import SmsSettings
from gateway.sessions.service import open_session
from gateway.voice.settings import VoiceSettings
from tests.gateway.voice.conftest import new_session
from tests.gateway.voice.http_apps import Receiver, voice_app
from tests.support.server import serving


@dataclass
class Agent:
    client: httpx.Client
    sms: Receiver

    def texted_code(self) -> str:
        match = re.search(r"code is (\d+)", self.sms.bodies()[-1]["text"])
        assert match is not None
        return match.group(1)


@pytest.fixture
def agent(engine: Engine) -> Iterator[Agent]:
    now = utcnow()
    with session_scope(engine) as db:
        session = new_session("agent1", now)
        token = open_session(db, session)
    sms = Receiver()
    settings = VoiceSettings(code_max_attempts=2, callback_at_login=False)
    with serving(sms.app) as sms_url:
        app = voice_app(engine, settings, SmsSettings(url=f"{sms_url}/sms"), utcnow)
        headers = {"X-CSRF-Token": session.csrf_token}
        cookies = {"sohogw_session": token}
        with serving(app) as url, httpx.Client(base_url=url, cookies=cookies, headers=headers) as client:
            yield Agent(client, sms)


def test_agent_adds_a_number_confirms_the_texted_code_and_sees_it_masked(agent: Agent) -> None:
    added = agent.client.post("/voice/numbers", json={"number": "138 1234 5678"})
    assert added.status_code == 201 and added.json()["status"] == "awaiting_code"
    assert agent.sms.bodies()[0]["to"] == "+8613812345678"
    confirmed = agent.client.post(f"/voice/numbers/{added.json()['id']}/confirm", json={"code": agent.texted_code()})
    assert confirmed.json()["status"] == "confirmed"
    listed = agent.client.get("/voice/numbers").json()
    assert [(n["masked"], n["status"]) for n in listed] == [("+86 138****5678", "confirmed")]


def test_wrong_codes_count_across_requests_until_the_limit(agent: Agent) -> None:
    number_id = agent.client.post("/voice/numbers", json={"number": "+8613812345678"}).json()["id"]
    wrong = "000000" if agent.texted_code() != "000000" else "111111"
    for _ in range(2):
        assert agent.client.post(f"/voice/numbers/{number_id}/confirm", json={"code": wrong}).status_code == 422
    late = agent.client.post(f"/voice/numbers/{number_id}/confirm", json={"code": agent.texted_code()})
    assert late.status_code == 422 and "too many" in late.json()["message"]


def test_premium_number_is_refused_with_a_reason(agent: Agent) -> None:
    refused = agent.client.post("/voice/numbers", json={"number": "+8616812345"})
    assert refused.status_code == 422 and "premium-rate" in refused.json()["message"]
    assert agent.sms.received == []


def test_ready_asks_for_the_callback_and_the_leg_is_shown_masked(agent: Agent) -> None:
    assert agent.client.post("/voice/ready", json={"ready": True}).status_code == 422
    number_id = agent.client.post("/voice/numbers", json={"number": "+8613812345678"}).json()["id"]
    agent.client.post(f"/voice/numbers/{number_id}/confirm", json={"code": agent.texted_code()})
    ready = agent.client.post("/voice/ready", json={"ready": True})
    assert ready.status_code == 200 and ready.json()["state"] == "requested" and ready.json()["agent_ready"]
    assert agent.client.get("/voice/leg").json()["number"] == "+86 138****5678"


def test_requests_without_a_home_session_are_refused(agent: Agent) -> None:
    anonymous = httpx.get(agent.client.base_url.join("/voice/numbers"))
    assert anonymous.status_code == 401


@pytest.mark.parametrize("csrf", [None, "", "not-the-session-secret"])
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/voice/numbers", {"number": "+8613812345678"}),
        ("POST", "/voice/numbers/1/confirm", {"code": "123456"}),
        ("DELETE", "/voice/numbers/1", None),
        ("POST", "/voice/ready", {"ready": True}),
    ],
)
def test_changes_without_the_sessions_csrf_token_are_refused(
    agent: Agent, csrf: str | None, method: str, path: str, body: dict[str, object] | None
) -> None:
    headers = {"X-CSRF-Token": csrf} if csrf is not None else {}
    client = httpx.Client(base_url=agent.client.base_url, cookies=agent.client.cookies, headers=headers)
    with client:
        refused = client.request(method, path, json=body)
        assert refused.status_code == 403 and refused.json()["error"] == "csrf"
        assert client.get("/voice/numbers").json() == [], "nothing changed"
    assert agent.sms.received == []


def test_removing_a_number_with_the_csrf_token_works(agent: Agent) -> None:
    number_id = agent.client.post("/voice/numbers", json={"number": "+8613812345678"}).json()["id"]
    assert agent.client.delete(f"/voice/numbers/{number_id}").status_code == 204
    assert agent.client.get("/voice/numbers").json() == []
