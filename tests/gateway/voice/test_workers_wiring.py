"""The whole wiring: the ``voice.legs`` worker on a runner, session nudges, the ARI adapter and the console's
call-state file."""

import time
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import Engine
from sqlmodel import select

from desktop_broker.apps.call_state import read_call_state
from gateway.clock import utcnow
from gateway.db import session_scope
from gateway.notify.sms import HttpSms, SmsSettings
from gateway.sessions.models import EndReason
from gateway.sessions.service import SESSION_STARTED, end_session, get_session
from gateway.voice.ari import AriPlatform, bridge_of
from gateway.voice.calls import call_state_file, customer_calls
from gateway.voice.dialable import mask
from gateway.voice.models import CallLeg, LegState
from gateway.voice.service import LEG_CHANGED
from gateway.voice.settings import SurveySettings, VoiceSettings
from gateway.voice.workers import CallLegs, SatisfactionSurveys
from tests.gateway.voice.ari_standin import AriStandIn
from tests.gateway.voice.conftest import AGENT_NUMBER, confirmed_number, start_session, wait_for
from tests.gateway.voice.http_apps import Receiver
from tests.support.server import serving
from tests.support.workers import running

CUSTOMER = "+8613800000001"


def _leg(engine: Engine, session_id: str) -> CallLeg | None:
    with session_scope(engine) as db:
        leg = db.exec(select(CallLeg).where(CallLeg.session_id == session_id)).first()
        if leg is not None:
            db.expunge(leg)
        return leg


def test_login_to_logout_with_a_customer_call_on_the_leg(
    engine: Engine,
    voice_settings: VoiceSettings,
    ari_platform: AriPlatform,
    ari_standin: tuple[AriStandIn, str],
    tmp_path: Path,
) -> None:
    standin, _url = ari_standin
    voice_settings.call_state_dir = tmp_path / "calls"
    with session_scope(engine) as db:
        confirmed_number(db, "agent1", AGENT_NUMBER, voice_settings, utcnow())
    with running([CallLegs(engine, ari_platform, voice_settings, utcnow)], engine):
        with session_scope(engine) as db:
            session_id = start_session(db, "agent1", utcnow()).id
        wait_for(lambda: (leg := _leg(engine, session_id)) is not None and leg.state is LegState.CONNECTED)
        leg = _leg(engine, session_id)
        assert leg is not None

        customer = standin.customer_call(bridge_of(leg.id), CUSTOMER)
        state_file = call_state_file(voice_settings.call_state_dir, session_id)
        wait_for(lambda: read_call_state(state_file).active)
        assert read_call_state(state_file).caller == CUSTOMER
        standin.customer_hangs_up(customer)
        wait_for(lambda: not read_call_state(state_file).active)
        with session_scope(engine) as db:
            assert [(c.kind, c.caller) for c in customer_calls(db, session_id)] == [
                ("answered", mask(CUSTOMER)),
                ("ended", mask(CUSTOMER)),
            ]

        with session_scope(engine) as db:
            session = get_session(db, session_id)
            assert session is not None
            end_session(db, session, EndReason.LOGOUT, actor="agent1", now=utcnow())
        wait_for(lambda: (leg := _leg(engine, session_id)) is not None and leg.state is LegState.ENDED)
        assert standin.deleted == [leg.channel_id]


def test_a_customer_call_ended_on_the_ari_leg_is_surveyed_once_by_the_survey_worker(
    engine: Engine, voice_settings: VoiceSettings, ari_platform: AriPlatform, ari_standin: tuple[AriStandIn, str]
) -> None:
    standin, _url = ari_standin
    voice_settings.survey = SurveySettings(enabled=True, inbound_secret=SecretStr("s" * 16), send_seconds=1)
    sms_gateway = Receiver()
    with session_scope(engine) as db:
        confirmed_number(db, "agent1", AGENT_NUMBER, voice_settings, utcnow())
    with serving(sms_gateway.app) as sms_url:
        sms = HttpSms(SmsSettings(url=f"{sms_url}/send"))
        surveys = SatisfactionSurveys(engine, sms, voice_settings.survey, utcnow)
        with running([CallLegs(engine, ari_platform, voice_settings, utcnow), surveys], engine) as runner:
            with session_scope(engine) as db:
                session_id = start_session(db, "agent1", utcnow()).id
            wait_for(lambda: (leg := _leg(engine, session_id)) is not None and leg.state is LegState.CONNECTED)
            leg = _leg(engine, session_id)
            assert leg is not None
            standin.customer_hangs_up(standin.customer_call(bridge_of(leg.id), CUSTOMER))
            wait_for(lambda: len(sms_gateway.received) == 1)
            passes = runner.status("voice.surveys").last_success_at
            wait_for(lambda: runner.status("voice.surveys").last_success_at != passes)  # one more pass: nothing new
            assert [body["to"] for body in sms_gateway.bodies()] == [CUSTOMER]


def test_a_replayed_login_nudge_does_not_ring_the_agent_again(
    engine: Engine, voice_settings: VoiceSettings, ari_platform: AriPlatform, ari_standin: tuple[AriStandIn, str]
) -> None:
    """A pass retried after a failure replays its nudges: the callback at login is placed once per session, so a leg
    that gave up (its dial attempts spent) is not dialled afresh by a replay (each replay used to request a new leg)."""
    with session_scope(engine) as db:
        confirmed_number(db, "agent1", AGENT_NUMBER, voice_settings, utcnow())
    with running([CallLegs(engine, ari_platform, voice_settings, utcnow)], engine) as runner:
        with session_scope(engine) as db:
            session_id = start_session(db, "agent1", utcnow()).id
        wait_for(lambda: (leg := _leg(engine, session_id)) is not None and leg.state is LegState.CONNECTED)
        with session_scope(engine) as db:
            leg = db.exec(select(CallLeg).where(CallLeg.session_id == session_id)).one()
            leg.state = LegState.FAILED  # as when the agent's phone never answered the re-dials
            db.add(leg)
        runner.nudge(SESSION_STARTED, session_id)  # as a retried pass replays it
        runner.nudge(LEG_CHANGED, leg.id)  # and a pass after it, to be sure the replay was judged
        time.sleep(1.0)
    with session_scope(engine) as db:
        assert len(db.exec(select(CallLeg).where(CallLeg.session_id == session_id)).all()) == 1
