"""Leg lifecycle rules on both databases, with an in-process platform that records what it was asked to do
(the real adapters are driven end to end in test_ari_e2e.py and test_webhook_contract.py)."""

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timedelta

import pytest
from sqlmodel import Session

from gateway.voice.errors import CallbackRateLimited, NoCallbackNumber, NumberRefused
from gateway.voice.models import CallLeg, LegState
from gateway.voice.platform import CAUSE_NO_ANSWER, EventSink, LegEvent, LegEventKind, LegOrder
from gateway.voice.reconcile import reconcile_legs
from gateway.voice.service import apply_leg_event, release_session, request_callback, set_ready
from gateway.voice.settings import VoiceSettings
from gateway.voice.status import current_leg, session_legs
from tests.gateway.voice.conftest import AGENT_NUMBER, confirmed_number, start_session


class RecordingPlatform:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def originate_callback(self, leg: LegOrder) -> None:
        self.calls.append(("originate", leg.dial_id))

    def hang_up(self, leg: LegOrder) -> None:
        self.calls.append(("hang_up", leg.dial_id))

    def set_ready(self, leg: LegOrder, ready: bool) -> None:
        self.calls.append(("ready" if ready else "not_ready", leg.dial_id))

    def live_dials(self) -> set[str] | None:
        return None

    def start(self, sink: EventSink) -> None: ...

    def stop(self) -> None: ...


def _within(db: Session) -> Callable[[], AbstractContextManager[Session]]:
    """Every step of a pass in the test's one session: these tests check lifecycle rules, not transactions."""
    return lambda: nullcontext(db)


def _ended(db: Session, leg: CallLeg, settings: VoiceSettings, now: datetime) -> None:
    assert leg.channel_id is not None
    apply_leg_event(db, LegEvent(leg.channel_id, LegEventKind.ENDED, CAUSE_NO_ANSWER), settings, now)


def test_agent_without_a_confirmed_number_is_told_to_add_one(db: Session, now: datetime) -> None:
    session = start_session(db, "agent1", now)
    with pytest.raises(NoCallbackNumber, match="add one under Voice"):
        request_callback(db, session, VoiceSettings(), actor="agent1", now=now)


def test_number_outside_the_current_policy_is_refused_with_the_reason(db: Session, now: datetime) -> None:
    session = start_session(db, "agent1", now)
    confirmed_number(db, "agent1", AGENT_NUMBER, VoiceSettings(), now)
    with pytest.raises(NumberRefused, match="numbers in CN are not allowed"):
        request_callback(db, session, VoiceSettings(allowed_countries=["HK"]), actor="agent1", now=now)


def test_callbacks_are_rate_limited_per_agent(db: Session, now: datetime) -> None:
    settings = VoiceSettings(callbacks_per_hour=2, max_dial_attempts=5, redial_backoff_seconds=[0])
    platform = RecordingPlatform()
    session = start_session(db, "agent1", now)
    confirmed_number(db, "agent1", AGENT_NUMBER, settings, now)
    leg = request_callback(db, session, settings, actor="agent1", now=now)
    for _ in range(3):
        reconcile_legs(_within(db), platform, now, settings=settings)
        if leg.channel_id is not None:
            _ended(db, leg, settings, now)
    assert [kind for kind, _ in platform.calls] == ["originate", "originate"]
    assert leg.problem is not None and "rate limit" in leg.problem
    release_session(db, session.id, now)
    reconcile_legs(_within(db), platform, now, settings=settings)
    with pytest.raises(CallbackRateLimited):
        request_callback(db, session, settings, actor="agent1", now=now)
    assert request_callback(db, session, settings, actor="agent1", now=now + timedelta(hours=1, seconds=1))


def test_ready_is_delivered_once_the_leg_is_connected(db: Session, now: datetime) -> None:
    settings = VoiceSettings(callback_at_login=False)
    platform = RecordingPlatform()
    session = start_session(db, "agent1", now)
    confirmed_number(db, "agent1", AGENT_NUMBER, settings, now)
    assert set_ready(db, session, True, settings, now=now).state is LegState.REQUESTED
    reconcile_legs(_within(db), platform, now, settings=settings)
    leg = current_leg(db, session.id)
    assert leg is not None and platform.calls[-1][0] == "originate"
    dial_id = platform.calls[-1][1]
    apply_leg_event(db, LegEvent(dial_id, LegEventKind.CONNECTED), settings, now)
    reconcile_legs(_within(db), platform, now, settings=settings)
    reconcile_legs(_within(db), platform, now, settings=settings)
    assert platform.calls == [("originate", dial_id), ("ready", dial_id)]
    set_ready(db, session, False, settings, now=now)
    reconcile_legs(_within(db), platform, now, settings=settings)
    assert platform.calls[-1] == ("not_ready", dial_id)
    assert session_legs(db, [session.id])[session.id].state is LegState.CONNECTED


def test_events_of_an_older_dial_do_not_move_the_leg(db: Session, now: datetime) -> None:
    settings = VoiceSettings(redial_backoff_seconds=[0])
    platform = RecordingPlatform()
    session = start_session(db, "agent1", now)
    confirmed_number(db, "agent1", AGENT_NUMBER, settings, now)
    leg = request_callback(db, session, settings, actor="agent1", now=now)
    reconcile_legs(_within(db), platform, now, settings=settings)
    first = leg.channel_id
    _ended(db, leg, settings, now)
    reconcile_legs(_within(db), platform, now, settings=settings)
    assert first is not None and leg.channel_id not in (None, first)
    assert apply_leg_event(db, LegEvent(first, LegEventKind.CONNECTED), settings, now) is None
    assert leg.state is LegState.REQUESTED


def test_a_number_that_left_the_policy_is_not_redialled(db: Session, now: datetime) -> None:
    settings = VoiceSettings(redial_backoff_seconds=[0])
    platform = RecordingPlatform()
    session = start_session(db, "agent1", now)
    confirmed_number(db, "agent1", AGENT_NUMBER, settings, now)
    leg = request_callback(db, session, settings, actor="agent1", now=now)
    reconcile_legs(_within(db), platform, now, settings=settings)
    _ended(db, leg, settings, now)
    reconcile_legs(_within(db), platform, now, settings=VoiceSettings(allowed_types=["fixed_line"]))
    assert leg.state is LegState.FAILED and leg.problem is not None and "no longer allowed" in leg.problem
    assert len(platform.calls) == 1


def test_a_leg_names_the_node_serving_its_session(db: Session, now: datetime) -> None:
    session = start_session(db, "agent1", now)
    session.node = "gw-b"
    confirmed_number(db, "agent1", AGENT_NUMBER, VoiceSettings(), now)
    leg = request_callback(db, session, VoiceSettings(), actor="agent1", now=now)
    assert leg.node == "gw-b"
