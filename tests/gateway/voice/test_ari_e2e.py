"""The real ARI adapter against the ARI stand-in, end to end through the service, the sink and the reconciler."""

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine
from sqlmodel import col, select

from gateway.audit.models import AuditEvent
from gateway.clock import utcnow
from gateway.db import session_scope
from gateway.sessions.models import EndReason
from gateway.sessions.service import end_session, get_session
from gateway.voice.ari import AriPlatform, bridge_of
from gateway.voice.models import CallEvent, CallLeg, LegState
from gateway.voice.reconcile import reconcile_legs
from gateway.voice.service import request_callback
from gateway.voice.settings import VoiceSettings
from gateway.voice.sink import make_event_sink
from tests.gateway.voice.ari_standin import AriStandIn
from tests.gateway.voice.conftest import AGENT_NUMBER, confirmed_number, start_session, wait_for


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

    def drive_until(self, state: LegState, timeout: float = 8.0) -> CallLeg:
        """Run the reconcile loop (as the scheduled job would, but every 50 ms) until the leg reaches ``state``."""

        def reached() -> bool:
            self.reconcile()
            return self.leg().state is state

        wait_for(reached, timeout=timeout, step=0.05)
        return self.leg()

    def login(self) -> CallLeg:
        with session_scope(self.engine) as db:
            session = get_session(db, self.session_id)
            assert session is not None
            request_callback(db, session, self.settings, actor="agent1", now=utcnow())
        return self.drive_until(LegState.CONNECTED)

    def event_kinds(self) -> list[str]:
        with session_scope(self.engine) as db:
            rows = db.exec(select(CallEvent).where(CallEvent.session_id == self.session_id).order_by(col(CallEvent.id)))
            return [row.kind for row in rows]


@pytest.fixture
def shift(
    engine: Engine, voice_settings: VoiceSettings, ari_platform: AriPlatform, ari_standin: tuple[AriStandIn, str]
) -> Iterator[Shift]:
    standin, _url = ari_standin
    with session_scope(engine) as db:
        session = start_session(db, "agent1", utcnow())
        confirmed_number(db, "agent1", AGENT_NUMBER, voice_settings, utcnow())
    ari_platform.start(make_event_sink(engine, ari_platform, voice_settings, utcnow))
    wait_for(lambda: standin.websocket_connects >= 1)
    yield Shift(engine, voice_settings, ari_platform, standin, session.id)


def test_login_callback_rings_then_connects_into_its_own_bridge(shift: Shift) -> None:
    leg = shift.login()
    assert leg.channel_id is not None
    assert shift.standin.originated == [leg.channel_id]
    assert shift.standin.channels[leg.channel_id]["connected"]["number"] == AGENT_NUMBER
    assert shift.standin.bridges[bridge_of(leg.id)]["channels"] == [leg.channel_id]
    kinds = shift.event_kinds()
    assert kinds.index("dial") < kinds.index("ringing") < kinds.index("connected")


def test_mid_shift_drop_is_reported_and_redialled(shift: Shift) -> None:
    first = shift.login()
    assert first.channel_id is not None
    shift.standin.remote_hang_up(first.channel_id)
    wait_for(lambda: shift.leg().state in (LegState.DROPPED, LegState.REQUESTED, LegState.RINGING))
    again = shift.drive_until(LegState.CONNECTED)
    assert again.channel_id not in (None, first.channel_id)
    assert len(shift.standin.originated) == 2
    assert "dropped" in shift.event_kinds()
    with session_scope(shift.engine) as db:
        reports = db.exec(select(AuditEvent).where(AuditEvent.action == "voice.leg")).all()
        assert [r.outcome for r in reports] == ["dropped"]
        assert AGENT_NUMBER not in reports[0].detail and "+86 138****5678" in reports[0].detail


def test_busy_number_is_dialled_until_attempts_run_out_then_reported_failed(shift: Shift) -> None:
    shift.standin.behaviour[AGENT_NUMBER] = "busy"
    with session_scope(shift.engine) as db:
        session = get_session(db, shift.session_id)
        assert session is not None
        request_callback(db, session, shift.settings, actor="agent1", now=utcnow())
    leg = shift.drive_until(LegState.FAILED)
    assert len(shift.standin.originated) == shift.settings.max_dial_attempts == 3
    assert leg.last_cause == 17 and not leg.wanted
    assert leg.problem is not None and "3 dials" in leg.problem
    shift.reconcile()
    assert len(shift.standin.originated) == 3, "a failed leg is not dialled again"


def test_session_end_hangs_up_the_leg_and_its_bridge(shift: Shift) -> None:
    leg = shift.login()
    with session_scope(shift.engine) as db:
        session = get_session(db, shift.session_id)
        assert session is not None
        end_session(db, session, EndReason.LOGOUT, actor="agent1", now=utcnow())
    ended = shift.drive_until(LegState.ENDED)
    assert shift.standin.deleted == [leg.channel_id]
    assert leg.channel_id not in shift.standin.channels and bridge_of(leg.id) not in shift.standin.bridges
    assert ended.channel_id is None and not ended.wanted


def test_lost_event_websocket_reconnects_and_resyncs_a_leg_that_died_meanwhile(shift: Shift) -> None:
    first = shift.login()
    assert first.channel_id is not None
    shift.standin.refuse_websockets = True
    shift.standin.lose_websockets()
    shift.standin.destroy_unseen(first.channel_id)
    wait_for(lambda: shift.platform.connects == 1 and shift.standin.websocket_connects == 1, timeout=2)
    shift.standin.refuse_websockets = False
    wait_for(lambda: shift.standin.websocket_connects >= 2, timeout=5)
    wait_for(lambda: shift.leg().state is LegState.CONNECTED and shift.leg().channel_id != first.channel_id)
    assert "lost" in shift.event_kinds()
    assert len(shift.standin.originated) == 2
