"""The SMS satisfaction survey end to end (SQLite and PostgreSQL): customer calls ended through the signed CTI
webhook of the real app, surveys texted by the background pass to a loopback SMS gateway, replies posted signed to
the inbound webhook, and the figures the supervision report draws from them."""

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlmodel import Session, select

from gateway.audit.service import recent
from gateway.clock import utcnow
from gateway.db import session_scope
from gateway.notify.sms import HttpSms, SmsSettings
from gateway.supervision.reports import period_bounds, report
from gateway.supervision.settings import SupervisionSettings
from gateway.voice.models import ReplyKind, SatisfactionSurvey, SurveyReply, SurveyState
from gateway.voice.reconcile import reconcile_legs
from gateway.voice.service import request_callback
from gateway.voice.settings import CtiWebhookSettings, SurveySettings, VoiceSettings
from gateway.voice.surveys import opt_out, send_pending_surveys
from gateway.voice.webhook import CtiWebhookPlatform, signed_headers
from policy import SupervisedTeams
from tests.gateway.supervision.conftest import add_session
from tests.gateway.voice.conftest import confirmed_number
from tests.gateway.voice.http_apps import Receiver, voice_app
from tests.support.server import serving

CTI_SECRET = "a-shared-secret-of-some-length"
SMS_SECRET = "the-sms-gateway-inbound-secret"
CUSTOMER = "+8613900001111"
OTHER_CUSTOMER = "+8613700002222"
OFFICE = SupervisionSettings(office_networks=["10.20.0.0/16"], team_groups=["Team-North", "Team-South"])

EVERY_TEAM = SupervisedTeams(True, frozenset(), "test: every team")


@dataclass
class SurveyRig:
    engine: Engine
    gateway: str
    sms_gateway: Receiver
    settings: VoiceSettings
    sms: SmsSettings
    legs: dict[str, str]
    """Each agent's callback leg id."""
    events: int = 0

    def cti(self, message: dict[str, Any]) -> httpx.Response:
        self.events += 1
        body = json.dumps({"event_id": f"e-{self.events}", **message}).encode()
        return httpx.post(
            f"{self.gateway}/voice/webhook/events", content=body, headers=signed_headers(CTI_SECRET, body, utcnow())
        )

    def call(self, agent: str, caller: str, kinds: tuple[str, ...] = ("offered", "answered", "ended")) -> None:
        for kind in kinds:
            answer = self.cti({"type": f"call.{kind}", "leg_id": self.legs[agent], "caller": caller})
            assert answer.json() == {"accepted": True, "applied": True}

    def send_pass(self, after_reading: threading.Barrier | None = None) -> int:
        """One background pass; with ``after_reading``, it waits there once it has read the pending surveys."""
        units = 0

        @contextmanager
        def unit() -> Iterator[Session]:
            nonlocal units
            units += 1
            with session_scope(self.engine) as db:
                yield db
            if units == 1 and after_reading is not None:
                after_reading.wait(timeout=10)

        return send_pending_surveys(unit, HttpSms(self.sms), self.settings.survey, utcnow())

    def reply(self, sender: str, text: str, message_id: str, *, secret: str = SMS_SECRET) -> httpx.Response:
        body = json.dumps({"message_id": message_id, "from": sender, "text": text}).encode()
        headers = signed_headers(secret, body, utcnow())
        return httpx.post(f"{self.gateway}/voice/sms/inbound", content=body, headers=headers)

    def texted(self) -> list[str]:
        return [body["to"] for body in self.sms_gateway.bodies()]

    def surveys(self) -> list[SatisfactionSurvey]:
        with session_scope(self.engine) as db:
            return list(db.exec(select(SatisfactionSurvey).order_by(SatisfactionSurvey.id)).all())  # type: ignore[arg-type]


@pytest.fixture
def rig(engine: Engine) -> Iterator[SurveyRig]:
    cti, sms_gateway = Receiver(), Receiver()
    with serving(cti.app) as cti_url, serving(sms_gateway.app) as sms_url:
        settings = VoiceSettings(
            platform="webhook",
            webhook=CtiWebhookSettings(url=f"{cti_url}/cti", secret=SecretStr(CTI_SECRET)),
            survey=SurveySettings(
                enabled=True, inbound_secret=SecretStr(SMS_SECRET), text="Rate us {lowest}-{highest}"
            ),
        )
        sms = SmsSettings(url=f"{sms_url}/send")
        platform = CtiWebhookPlatform(settings.webhook, utcnow)
        legs = {}
        # agent1 works from home, agent2 on site (an office address at login); each has a callback leg.
        for login, source, number in [
            ("agent1", "198.51.100.7", "+8613812345678"),
            ("agent2", "10.20.1.5", "+8613812345679"),
        ]:
            with session_scope(engine) as db:
                session = add_session(db, login, created_at=utcnow() - timedelta(minutes=5), source_ip=source)
                confirmed_number(db, login, number, settings, utcnow())
                legs[login] = request_callback(db, session, settings, actor=login, now=utcnow()).id
        reconcile_legs(lambda: session_scope(engine), platform, utcnow(), settings=settings)
        with serving(voice_app(engine, settings, sms, utcnow)) as gateway:
            yield SurveyRig(engine, gateway, sms_gateway, settings, sms, legs)
        platform.stop()


def test_an_answered_call_that_ends_gets_exactly_one_survey_however_often_the_pass_runs(rig: SurveyRig) -> None:
    rig.call("agent1", CUSTOMER)
    rig.call("agent1", OTHER_CUSTOMER, kinds=("offered", "ended"))  # never answered: no survey
    assert rig.texted() == []  # nothing is sent with the call's end, only by the pass
    # Two nodes' passes both see the survey pending before either takes it: only one may text it.
    both_read = threading.Barrier(2)
    passes = [threading.Thread(target=rig.send_pass, args=(both_read,)) for _ in range(2)]
    for running in passes:
        running.start()
    for running in passes:
        running.join(timeout=30)
    assert rig.send_pass() == 0
    assert rig.texted() == [CUSTOMER]
    assert rig.sms_gateway.bodies()[0]["text"] == "Rate us 1-5"
    (survey,) = rig.surveys()
    assert survey.state is SurveyState.SENT and survey.login == "agent1" and survey.person_id == "test:agent1"


def test_a_retried_call_end_does_not_plan_a_second_survey(rig: SurveyRig) -> None:
    rig.call("agent1", CUSTOMER)
    rig.call("agent1", CUSTOMER, kinds=("ended",))  # the platform repeats the end under a new event id
    assert rig.send_pass() == 1
    assert rig.send_pass() == 0
    assert rig.texted() == [CUSTOMER]


def test_an_opted_out_number_gets_no_survey_and_the_skip_is_audited(rig: SurveyRig) -> None:
    with session_scope(rig.engine) as db:
        opt_out(db, CUSTOMER, source="admin", actor="admin1", now=utcnow())
    rig.call("agent1", CUSTOMER)
    assert rig.send_pass() == 0
    assert rig.texted() == []
    (survey,) = rig.surveys()
    assert survey.state is SurveyState.OPTED_OUT
    with session_scope(rig.engine) as db:
        (skipped,) = recent(db, action="voice.survey.send")
    assert skipped.outcome == "opted_out" and CUSTOMER not in skipped.detail and "****" in skipped.detail


def test_a_stop_reply_opts_the_number_out_of_every_later_survey(rig: SurveyRig) -> None:
    rig.call("agent1", CUSTOMER)
    rig.send_pass()
    answer = rig.reply(CUSTOMER, " stop ", "m-1")
    assert answer.status_code == 200 and answer.json() == {"kind": "stop"}
    rig.call("agent2", CUSTOMER)
    assert rig.send_pass() == 0
    assert rig.texted() == [CUSTOMER]
    with session_scope(rig.engine) as db:
        (opted,) = recent(db, action="voice.survey.opt_out")
    assert opted.actor == "voice.survey" and CUSTOMER not in opted.detail


def test_a_reply_scores_the_call_of_its_agent_and_team_and_the_report_splits_home_and_on_site(rig: SurveyRig) -> None:
    rig.call("agent1", CUSTOMER)
    rig.call("agent2", OTHER_CUSTOMER)
    assert rig.send_pass() == 2
    assert rig.reply(CUSTOMER, "４", "m-1").json() == {"kind": "score"}  # a full-width digit, as Chinese phones send
    home_survey = next(s for s in rig.surveys() if s.customer_e164 == CUSTOMER)
    with session_scope(rig.engine) as db:
        reply = db.exec(select(SurveyReply)).one()
        assert (reply.survey_id, reply.score) == (home_survey.id, 4)
        assert home_survey.person_id == "test:agent1" and home_survey.score == 4
        start, stop = period_bounds("day", utcnow().date())
        lines = {
            (line.scope, line.name, line.location): line
            for line in report(db, start, stop, OFFICE, utcnow(), EVERY_TEAM)
        }
    home, on_site = lines[("agent", "agent1", "home")], lines[("agent", "agent2", "on_site")]
    assert (home.surveys_sent, home.average_score, home.response_rate) == (1, 4.0, 1.0)
    assert (on_site.surveys_sent, on_site.average_score, on_site.response_rate) == (1, None, 0.0)
    assert lines[("team", "Team-North", "home")].average_score == 4.0
    assert lines[("team", "Team-South", "on_site")].surveys_sent == 1


def test_a_badly_signed_reply_is_refused_audited_and_stores_nothing(rig: SurveyRig) -> None:
    rig.call("agent1", CUSTOMER)
    rig.send_pass()
    answer = rig.reply(CUSTOMER, "5", "m-1", secret="x" * 30)
    assert answer.status_code == 401 and answer.json()["message"] == "bad signature"
    with session_scope(rig.engine) as db:
        (refusal,) = recent(db, action="voice.survey.inbound")
        assert refusal.outcome == "webhook_refused" and "bad signature" in refusal.detail
        assert db.exec(select(SurveyReply)).all() == []
    assert rig.surveys()[0].score is None


def test_garbled_unknown_and_late_replies_are_stored_as_such_and_a_redelivery_once(rig: SurveyRig) -> None:
    rig.call("agent1", CUSTOMER)
    rig.call("agent2", OTHER_CUSTOMER)
    rig.send_pass()
    with session_scope(rig.engine) as db:  # agent2's survey went out three days ago
        survey = db.exec(select(SatisfactionSurvey).where(SatisfactionSurvey.customer_e164 == OTHER_CUSTOMER)).one()
        survey.sent_at = utcnow() - timedelta(days=3)
        db.add(survey)
    assert rig.reply(CUSTOMER, "very good!!", "m-1").json() == {"kind": "garbled"}
    assert rig.reply(CUSTOMER, "9", "m-2").json() == {"kind": "garbled"}  # out of the 1-5 range
    assert rig.reply("+8613600003333", "5", "m-3").json() == {"kind": "unknown"}
    assert rig.reply(OTHER_CUSTOMER, "5", "m-4").json() == {"kind": "late"}
    assert rig.reply(CUSTOMER, "very good!!", "m-1").json() == {"kind": "garbled"}  # redelivered: stored once
    with session_scope(rig.engine) as db:
        kinds = [r.kind for r in db.exec(select(SurveyReply).order_by(SurveyReply.id)).all()]  # type: ignore[arg-type]
        audited = recent(db, action="voice.survey.reply")
    assert kinds == [ReplyKind.GARBLED, ReplyKind.GARBLED, ReplyKind.UNKNOWN, ReplyKind.LATE]
    assert sorted(event.outcome for event in audited) == ["garbled", "garbled", "late", "unknown"]
    assert all(survey.score is None for survey in rig.surveys())
