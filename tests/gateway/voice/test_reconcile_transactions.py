"""A reconcile pass talks to the platform with no transaction open, on SQLite and PostgreSQL: another connection
can write the very leg being dialled, an event arriving before the dial's outcome is recorded finds its leg, and a
pass that died between writing its intent and dialling is repaired by a resync."""

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, update
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, select

from gateway.db import SQLITE_BUSY_TIMEOUT_MS, is_postgres, session_scope
from gateway.sessions.service import get_session
from gateway.voice.intent import DIAL_GRACE
from gateway.voice.models import CallEvent, CallLeg, LegState
from gateway.voice.platform import EventSink, LegEvent, LegEventKind, LegOrder
from gateway.voice.reconcile import reconcile_legs
from gateway.voice.service import apply_leg_event, release_session, request_callback, set_ready
from gateway.voice.settings import VoiceSettings
from gateway.voice.sink import make_event_sink
from tests.gateway.voice.conftest import AGENT_NUMBER, confirmed_number, start_session

SETTINGS = VoiceSettings(redial_backoff_seconds=[0])


class ProbingPlatform:
    """While answering each request, writes the leg's row from another connection with a short lock timeout: a pass
    holding its transaction across the call (the row lock, or SQLite's write lock) makes that write fail."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.calls: list[str] = []
        self.blocked: list[str] = []
        self.live: set[str] = set()

    def _probe(self, what: str, leg: LegOrder) -> None:
        self.calls.append(what)
        with self.engine.connect() as connection:
            try:
                if is_postgres(self.engine):
                    connection.exec_driver_sql("SET LOCAL lock_timeout = '300ms'")
                else:
                    connection.exec_driver_sql("PRAGMA busy_timeout = 300")
                connection.execute(update(CallLeg).where(col(CallLeg.id) == leg.leg_id).values(id=CallLeg.id))
                connection.commit()
            except OperationalError as error:
                connection.rollback()
                self.blocked.append(f"{what}: {error.orig}")
            finally:
                if not is_postgres(self.engine):
                    connection.exec_driver_sql(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")

    def originate_callback(self, leg: LegOrder) -> None:
        self._probe("originate", leg)
        self.live.add(leg.dial_id)

    def hang_up(self, leg: LegOrder) -> None:
        self._probe("hang_up", leg)
        self.live.discard(leg.dial_id)

    def set_ready(self, leg: LegOrder, ready: bool) -> None:
        self._probe("ready" if ready else "not_ready", leg)

    def live_dials(self) -> set[str] | None:
        return set(self.live)

    def start(self, sink: EventSink) -> None: ...

    def stop(self) -> None: ...


class AnsweringPlatform(ProbingPlatform):
    """Reports ringing and answer through the real event sink before ``originate`` returns, as a fast PBX may."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.events_applied_in_time = False

    def originate_callback(self, leg: LegOrder) -> None:
        super().originate_callback(leg)
        sink = make_event_sink(self.engine, self, SETTINGS, lambda: NOW)

        def report() -> None:
            sink(LegEvent(leg.dial_id, LegEventKind.RINGING))
            sink(LegEvent(leg.dial_id, LegEventKind.CONNECTED))

        # The adapter's own thread delivers events; a pass still holding the leg's lock would keep them waiting.
        events = threading.Thread(target=report)
        events.start()
        events.join(timeout=5)
        self.events_applied_in_time = not events.is_alive()


class CrashingPlatform(ProbingPlatform):
    """The process dies inside the dial request, before the platform got it."""

    def originate_callback(self, leg: LegOrder) -> None:
        raise SystemExit("killed")


NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def _unit(engine: Engine) -> Callable[[], AbstractContextManager[Session]]:
    return lambda: session_scope(engine)


def _agent_wants_a_callback(engine: Engine, now: datetime) -> tuple[str, str]:
    with session_scope(engine) as db:
        session = start_session(db, "agent1", now)
        confirmed_number(db, "agent1", AGENT_NUMBER, SETTINGS, now)
        leg = request_callback(db, session, SETTINGS, actor="agent1", now=now)
        return session.id, leg.id


def _leg(engine: Engine, leg_id: str) -> CallLeg:
    with session_scope(engine) as db:
        leg = db.get(CallLeg, leg_id)
        assert leg is not None
        db.expunge(leg)
        return leg


def _kinds(engine: Engine, leg_id: str) -> list[str]:
    with session_scope(engine) as db:
        rows = db.exec(select(CallEvent).where(CallEvent.leg_id == leg_id).order_by(col(CallEvent.id)))
        return [row.kind for row in rows]


def test_no_database_lock_is_held_while_the_platform_dials_sets_ready_or_hangs_up(engine: Engine) -> None:
    session_id, leg_id = _agent_wants_a_callback(engine, NOW)
    platform = ProbingPlatform(engine)
    assert reconcile_legs(_unit(engine), platform, NOW, settings=SETTINGS).dialled == [leg_id]
    dial_id = _leg(engine, leg_id).channel_id
    assert dial_id is not None
    with session_scope(engine) as db:
        assert apply_leg_event(db, LegEvent(dial_id, LegEventKind.CONNECTED), SETTINGS, NOW) is not None
        session = get_session(db, session_id)
        assert session is not None
        set_ready(db, session, True, SETTINGS, now=NOW)
    reconcile_legs(_unit(engine), platform, NOW, settings=SETTINGS)
    assert _leg(engine, leg_id).platform_ready
    with session_scope(engine) as db:
        release_session(db, session_id, NOW)
    assert reconcile_legs(_unit(engine), platform, NOW, settings=SETTINGS).hung_up == [leg_id]
    assert platform.calls == ["originate", "ready", "hang_up"]
    assert platform.blocked == []
    ended = _leg(engine, leg_id)
    assert ended.state is LegState.ENDED and ended.channel_id is None


def test_an_event_arriving_before_the_dial_is_recorded_finds_its_leg_and_is_kept(engine: Engine) -> None:
    _session_id, leg_id = _agent_wants_a_callback(engine, NOW)
    platform = AnsweringPlatform(engine)
    reconcile_legs(_unit(engine), platform, NOW, settings=SETTINGS)
    assert platform.events_applied_in_time
    leg = _leg(engine, leg_id)
    assert leg.state is LegState.CONNECTED and leg.channel_id in platform.live
    assert _kinds(engine, leg_id)[-4:] == ["dial", "ringing", "connected", "dialled"]
    assert platform.blocked == []


def test_a_pass_killed_before_dialling_is_redialled_by_a_resync_after_the_grace(engine: Engine) -> None:
    _session_id, leg_id = _agent_wants_a_callback(engine, NOW)
    with pytest.raises(SystemExit):
        reconcile_legs(_unit(engine), CrashingPlatform(engine), NOW, settings=SETTINGS)
    orphan = _leg(engine, leg_id).channel_id
    assert orphan is not None, "the dial's intent was committed before the platform was asked"
    platform = ProbingPlatform(engine)
    soon = reconcile_legs(_unit(engine), platform, NOW + timedelta(seconds=1), settings=SETTINGS, resync=True)
    assert soon.lost == [] and platform.calls == [], "a dial that may still be under way is not judged lost"
    later = NOW + DIAL_GRACE + timedelta(seconds=1)
    report = reconcile_legs(_unit(engine), platform, later, settings=SETTINGS, resync=True)
    assert report.lost == [leg_id] and report.dialled == [leg_id]
    assert _leg(engine, leg_id).channel_id not in (None, orphan)
    assert platform.calls == ["originate"]


def test_a_recorded_dial_the_platform_no_longer_holds_is_lost_at_once_on_resync(engine: Engine) -> None:
    _session_id, leg_id = _agent_wants_a_callback(engine, NOW)
    platform = ProbingPlatform(engine)
    reconcile_legs(_unit(engine), platform, NOW, settings=SETTINGS)
    first = _leg(engine, leg_id).channel_id
    platform.live.clear()
    report = reconcile_legs(_unit(engine), platform, NOW, settings=SETTINGS, resync=True)
    assert report.lost == [leg_id] and _leg(engine, leg_id).channel_id not in (None, first)
