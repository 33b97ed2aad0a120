"""The line really is the agent's: with an acknowledgement key, an answered callback that nobody acknowledges (a
voicemail) never connects, is hung up and re-dialled within the limits, and the agent stays signed in.

The real ARI adapter against the ARI STAND-IN (no Asterisk can be installed here), which sends ChannelDtmfReceived
as Asterisk's ARI documents it.
"""

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine
from sqlmodel import col, select

from gateway.audit.models import AuditEvent
from gateway.clock import utcnow
from gateway.db import session_scope
from gateway.sessions.models import SessionState
from gateway.sessions.service import get_session
from gateway.voice.ari import AriPlatform, bridge_of
from gateway.voice.models import CallEvent, CallLeg, LegState
from gateway.voice.reconcile import reconcile_legs
from gateway.voice.service import request_callback, set_ready
from gateway.voice.settings import VoiceSettings
from gateway.voice.sink import make_event_sink
from tests.gateway.voice.ari_standin import AriStandIn
from tests.gateway.voice.conftest import AGENT_NUMBER, confirmed_number, start_session, wait_for

ACK_SECONDS = 3


@dataclass
class Shift:
    engine: Engine
    settings: VoiceSettings
    platform: AriPlatform
    standin: AriStandIn
    session_id: str

    def reconcile(self) -> None:
        reconcile_legs(lambda: session_scope(self.engine), self.platform, utcnow(), settings=self.settings)

    def leg(self) -> CallLeg:
        with session_scope(self.engine) as db:
            leg = db.exec(select(CallLeg).where(CallLeg.session_id == self.session_id)).one()
            db.expunge(leg)
            return leg

    def kinds(self) -> list[str]:
        with session_scope(self.engine) as db:
            rows = db.exec(select(CallEvent).where(CallEvent.session_id == self.session_id).order_by(col(CallEvent.id)))
            return [row.kind for row in rows]

    def reports(self) -> list[AuditEvent]:
        with session_scope(self.engine) as db:
            query = select(AuditEvent).where(AuditEvent.action == "voice.leg").order_by(col(AuditEvent.seq))
            return list(db.exec(query).all())

    def answered(self) -> CallLeg:
        """Log in, be called back, answer: the leg waits for the key."""
        with session_scope(self.engine) as db:
            session = get_session(db, self.session_id)
            assert session is not None
            request_callback(db, session, self.settings, actor="agent1", now=utcnow())
        self.reconcile()
        wait_for(lambda: "answered" in self.kinds())
        return self.leg()

    def ready(self) -> None:
        with session_scope(self.engine) as db:
            session = get_session(db, self.session_id)
            assert session is not None
            set_ready(db, session, True, self.settings, now=utcnow())


@pytest.fixture
def shift(engine: Engine, voice_settings: VoiceSettings, ari_standin: tuple[AriStandIn, str]) -> Iterator[Shift]:
    standin, url = ari_standin
    voice_settings.ari.url = url
    settings = voice_settings.model_copy(update={"ack_digit": "1", "ack_seconds": ACK_SECONDS})
    platform = AriPlatform(settings.ari, ack_digit="1")
    with session_scope(engine) as db:
        session = start_session(db, "agent1", utcnow())
        confirmed_number(db, "agent1", AGENT_NUMBER, settings, utcnow())
    platform.start(make_event_sink(engine, platform, settings, utcnow))
    try:
        wait_for(lambda: standin.websocket_connects >= 1)
        yield Shift(engine, settings, platform, standin, session.id)
    finally:
        platform.stop()


def _not_connected(shift: Shift, leg: CallLeg) -> None:
    """Answered without the key: not connected, not in its bridge, not made ready, whatever the agent asked."""
    assert leg.state is LegState.RINGING and leg.channel_id is not None
    shift.ready()
    shift.reconcile()
    assert shift.leg().state is LegState.RINGING
    assert shift.standin.bridges.get(bridge_of(leg.id), {}).get("channels", []) == []
    assert (leg.channel_id, "SOHOGW_READY") not in shift.standin.variables


def test_an_answer_with_no_key_never_connects_and_is_redialled_after_the_time(shift: Shift) -> None:
    first = shift.answered()
    _not_connected(shift, first)
    wait_for(lambda: (shift.reconcile(), shift.leg().channel_id != first.channel_id)[1], timeout=ACK_SECONDS + 5)
    assert first.channel_id in shift.standin.deleted, "the unacknowledged dial is hung up"
    wait_for(lambda: (shift.reconcile(), len(shift.standin.originated) == 2)[1])
    assert "not_acknowledged" in shift.kinds() and "connected" not in shift.kinds()
    reports = [r for r in shift.reports() if r.outcome == "not_acknowledged"]
    assert len(reports) == 1 and AGENT_NUMBER not in reports[0].detail and "+86 138****5678" in reports[0].detail
    with session_scope(shift.engine) as db:
        assert get_session(db, shift.session_id).state is SessionState.ACTIVE  # type: ignore[union-attr]


def test_a_voicemail_that_never_presses_the_key_fails_the_leg_within_the_limits_not_the_agent(shift: Shift) -> None:
    shift.settings.ack_seconds = 0  # the stand-in answers at once; every answer is overdue at the next pass
    shift.answered()

    def failed() -> bool:
        shift.reconcile()
        return shift.leg().state is LegState.FAILED

    wait_for(failed, timeout=10, step=0.05)
    assert len(shift.standin.originated) == shift.settings.max_dial_attempts == 3
    assert [r.outcome for r in shift.reports()].count("not_acknowledged") == 3
    assert shift.reports()[-1].outcome == "failed"
    with session_scope(shift.engine) as db:
        assert get_session(db, shift.session_id).state is SessionState.ACTIVE  # type: ignore[union-attr]


def test_a_wrong_key_is_audited_and_does_not_connect(shift: Shift) -> None:
    leg = shift.answered()
    assert leg.channel_id is not None
    shift.standin.press(leg.channel_id, "2")
    wait_for(lambda: "wrong_key" in shift.kinds())
    _not_connected(shift, shift.leg())
    wrong = [r for r in shift.reports() if r.outcome == "wrong_key"]
    assert len(wrong) == 1 and AGENT_NUMBER not in wrong[0].detail


def test_the_right_key_connects_the_leg_into_its_bridge_and_then_ready_reaches_the_platform(shift: Shift) -> None:
    leg = shift.answered()
    assert leg.channel_id is not None
    shift.standin.press(leg.channel_id, "1")
    wait_for(lambda: shift.leg().state is LegState.CONNECTED)
    assert shift.standin.bridges[bridge_of(leg.id)]["channels"] == [leg.channel_id]
    shift.ready()
    shift.reconcile()
    assert shift.standin.variables[(leg.channel_id, "SOHOGW_READY")] == "1"
    shift.standin.press(leg.channel_id, "7")  # keys during the shift are the agent's business, not a wrong key
    shift.reconcile()
    assert shift.leg().state is LegState.CONNECTED and "wrong_key" not in shift.kinds()
    assert len(shift.standin.originated) == 1
