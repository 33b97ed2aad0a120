"""Which X11 seats the recorder wants to record: policy's app list, and with customer calls only, one recording per
answered call (its id in the key) and none between calls."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from gateway.db import session_scope
from gateway.policies.service import import_policy
from gateway.seats.models import SeatLease, SeatLeaseState
from gateway.seats.screen_recorder import SeatRecorders
from gateway.seats.settings import RecordingSettings
from gateway.supervision.alerts import RecordingStorageAlarm
from gateway.voice.models import CallEvent
from tests.gateway.supervision.conftest import add_session

NOW = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
POLICY = """version: 1
apps:
  - {id: console, title: Console, backend: x11, command: [console-app]}
  - {id: notes, title: Notes, backend: x11, command: [notes-app]}
groups:
  SOHO-Agents:
    roles: [agent]
    apps: [console, notes]
    recording: true
    recording_scope: {apps: [console], customer_calls_only: true}
"""


def _lease(engine: Engine, app_id: str) -> tuple[str, str]:
    with session_scope(engine) as db:
        session = add_session(db, f"agent-{app_id}", created_at=NOW, groups=["SOHO-Agents"])
        lease = SeatLease(
            id=f"lease-{app_id}",
            session_id=session.id,
            person_id=session.person_id,
            login=session.login,
            app_id=app_id,
            backend="x11",
            node="node-a",
            seat_id=f"seat-{app_id}",
            state=SeatLeaseState.CONNECTED,
            idle_timeout_seconds=900,
            max_session_seconds=28800,
            started_at=NOW,
            last_activity_at=NOW,
        )
        db.add(lease)
        return session.id, lease.id


def _call(engine: Engine, session_id: str, kind: str, at: datetime) -> int:
    with session_scope(engine) as db:
        row = CallEvent(session_id=session_id, person_id="p", login="a", leg_id=None, kind=f"call.{kind}", at=at)
        db.add(row)
        db.flush()
        assert row.id is not None
        return row.id


def test_calls_only_records_the_policy_app_once_per_answered_call_and_never_between(engine: Engine) -> None:
    with session_scope(engine) as db:
        import_policy(db, POLICY, actor="test", source="", now=NOW)
    console_session, console_lease = _lease(engine, "console")
    _notes_session, _notes_lease = _lease(engine, "notes")
    recorders = SeatRecorders(
        engine, RecordingSettings(), "node-a", lambda: NOW, lambda _seat: object(), RecordingStorageAlarm()
    )  # type: ignore[arg-type, return-value]

    assert recorders.wanted() == {}, "no call yet: nothing recorded"
    first = _call(engine, console_session, "answered", NOW + timedelta(seconds=1))
    assert [(key.lease_id, key.call_event_id) for key in recorders.wanted()] == [(console_lease, first)]
    _call(engine, console_session, "ended", NOW + timedelta(seconds=2))
    assert recorders.wanted() == {}
    second = _call(engine, console_session, "answered", NOW + timedelta(seconds=3))
    assert [(key.lease_id, key.call_event_id) for key in recorders.wanted()] == [(console_lease, second)]
