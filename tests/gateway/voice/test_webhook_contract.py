"""The CTI webhook against its published contract (docs/voice.md): both directions signed, replays refused."""

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, update

from gateway.clock import utcnow
from gateway.db import session_scope
from gateway.notify.sms import SmsSettings
from gateway.voice.calls import customer_calls
from gateway.voice.models import CallLeg, LegState
from gateway.voice.reconcile import reconcile_legs
from gateway.voice.service import request_callback
from gateway.voice.settings import CtiWebhookSettings, VoiceSettings
from gateway.voice.status import current_leg
from gateway.voice.webhook import CtiWebhookPlatform, signed_headers
from tests.gateway.voice.conftest import AGENT_NUMBER, confirmed_number, start_session
from tests.gateway.voice.http_apps import Receiver, voice_app
from tests.support.server import serving

SECRET = "a-shared-secret-of-some-length"


@dataclass
class Contract:
    gateway: str
    cti: Receiver
    settings: VoiceSettings
    session_id: str
    dial_id: str
    leg_id: str

    def post(
        self,
        message: dict[str, Any],
        *,
        secret: str = SECRET,
        age: timedelta = timedelta(),
        content_type: str | None = None,
    ) -> httpx.Response:
        body = json.dumps(message).encode()
        headers = signed_headers(secret, body, utcnow() - age)
        if content_type is not None:
            headers["Content-Type"] = content_type
        return httpx.post(f"{self.gateway}/voice/webhook/events", content=body, headers=headers)


@pytest.fixture
def contract(engine: Engine) -> Iterator[Contract]:
    cti = Receiver()
    with serving(cti.app) as cti_url:
        settings = VoiceSettings(
            platform="webhook", webhook=CtiWebhookSettings(url=f"{cti_url}/cti", secret=SecretStr(SECRET))
        )
        platform = CtiWebhookPlatform(settings.webhook, utcnow)
        with session_scope(engine) as db:
            session = start_session(db, "agent1", utcnow())
            confirmed_number(db, "agent1", AGENT_NUMBER, settings, utcnow())
            leg = request_callback(db, session, settings, actor="agent1", now=utcnow())
        reconcile_legs(lambda: session_scope(engine), platform, utcnow(), settings=settings)
        login = cti.verified(settings, utcnow())[0]
        with serving(voice_app(engine, settings, SmsSettings(), utcnow)) as gateway:
            yield Contract(gateway, cti, settings, session.id, login["dial_id"], leg.id)
        platform.stop()


def test_gateway_sends_a_signed_login_with_the_remote_number(contract: Contract) -> None:
    (login,) = contract.cti.verified(contract.settings, utcnow())
    assert login["type"] == "agent.login" and login["remote_number"] == AGENT_NUMBER
    assert login["agent"] == "agent1" and login["leg_id"] == contract.leg_id


def test_well_signed_event_is_accepted_and_moves_the_leg(contract: Contract, engine: Engine) -> None:
    answer = contract.post({"event_id": "e-1", "type": "leg.connected", "dial_id": contract.dial_id})
    assert answer.status_code == 200 and answer.json() == {"accepted": True, "applied": True}
    with session_scope(engine) as db:
        leg = current_leg(db, contract.session_id)
        assert leg is not None and leg.state is LegState.CONNECTED


@pytest.mark.parametrize("content_type", ["application/json", "application/octet-stream"])
def test_an_event_with_a_nul_is_refused_by_its_field_and_the_platforms_next_event_is_applied(
    contract: Contract, engine: Engine, content_type: str
) -> None:
    """PostgreSQL cannot look up or store an ``event_id`` with a NUL: the event answered 500 there; now it is refused
    at the door (`gateway.web.unstorable_text`) and the platform's next event goes through. The webhook parses its
    body as JSON whatever type it declares, so the door looks through it whatever type it declares too."""
    event = {"event_id": "e-\x00", "type": "leg.connected", "dial_id": contract.dial_id}
    refused = contract.post(event, content_type=content_type)
    assert refused.status_code == 422 and refused.json()["field"] == "event_id"
    answer = contract.post({"event_id": "e-1", "type": "leg.connected", "dial_id": contract.dial_id})
    assert answer.status_code == 200 and answer.json() == {"accepted": True, "applied": True}


def test_replayed_event_is_refused(contract: Contract) -> None:
    event = {"event_id": "e-2", "type": "leg.ringing", "dial_id": contract.dial_id}
    assert contract.post(event).status_code == 200
    replay = contract.post(event)
    assert replay.status_code == 401 and "replay" in replay.json()["message"]


def test_bad_signature_is_refused_and_changes_nothing(contract: Contract, engine: Engine) -> None:
    answer = contract.post({"event_id": "e-3", "type": "leg.connected", "dial_id": contract.dial_id}, secret="x" * 30)
    assert answer.status_code == 401 and answer.json()["message"] == "bad signature"
    with session_scope(engine) as db:
        assert current_leg(db, contract.session_id).state is LegState.REQUESTED  # type: ignore[union-attr]


def test_stale_timestamp_is_refused_even_with_a_good_signature(contract: Contract) -> None:
    answer = contract.post(
        {"event_id": "e-4", "type": "leg.ringing", "dial_id": contract.dial_id},
        age=timedelta(seconds=contract.settings.webhook.window_seconds + 5),
    )
    assert answer.status_code == 401 and "stale" in answer.json()["message"]


def test_unsigned_event_is_refused(contract: Contract) -> None:
    body = json.dumps({"event_id": "e-5", "type": "leg.ringing", "dial_id": contract.dial_id})
    answer = httpx.post(f"{contract.gateway}/voice/webhook/events", content=body)
    assert answer.status_code == 401


def test_customer_call_events_are_recorded_for_the_session(contract: Contract, engine: Engine) -> None:
    for number, kind in enumerate(["offered", "answered", "ended"]):
        event = {
            "event_id": f"c-{number}",
            "type": f"call.{kind}",
            "leg_id": contract.leg_id,
            "caller": "+8613800000001",
        }
        assert contract.post(event).json()["applied"] is True
    with session_scope(engine) as db:
        assert [c.kind for c in customer_calls(db, contract.session_id)] == ["offered", "answered", "ended"]


def test_an_event_waiting_for_the_database_does_not_stall_other_requests(contract: Contract, engine: Engine) -> None:
    answers: list[httpx.Response] = []
    message = {"event_id": "e-slow", "type": "leg.connected", "dial_id": contract.dial_id}
    with engine.connect() as holder:
        # Another transaction holds the leg (and on SQLite the database's write lock): the event must wait.
        holder.execute(update(CallLeg).values(id=CallLeg.id))
        waiting = threading.Thread(target=lambda: answers.append(contract.post(message)))
        waiting.start()
        try:
            waiting.join(timeout=0.5)
            assert waiting.is_alive(), "the event did not wait for the lock"
            # Served while the event waits: its blocking SQL must not run on the server's event loop.
            assert httpx.get(f"{contract.gateway}/login", timeout=2).status_code == 200
        finally:
            holder.rollback()
            waiting.join(timeout=15)
    assert answers[0].json() == {"accepted": True, "applied": True}
