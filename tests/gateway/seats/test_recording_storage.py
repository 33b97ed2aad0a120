"""Recordings never fill the disk: retention and quota purge the oldest (audited), a new recording is refused
(audited, alerted) when the quota or the free-space floor is reached, and the alert resolves when room is back."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from gateway.audit.models import AuditEvent
from gateway.seats import recordings
from gateway.seats.models import RecordingState, ScreenRecording, SeatLease, SeatLeaseState
from gateway.seats.recording_files import RecordingFiles
from gateway.seats.settings import RecordingSettings
from gateway.supervision.alerts import RecordingStorageAlarm
from gateway.supervision.models import Alert
from gateway.supervision.rules import RECORDING_STORAGE
from tests.gateway.supervision.conftest import add_session

NOW = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
SIZE = 100_000
ALARM = RecordingStorageAlarm()
"""Supervision's, as the app hands it to the seats."""


@pytest.fixture
def files(tmp_path: Path) -> RecordingFiles:
    made = RecordingFiles(tmp_path / "in-progress", tmp_path / "sealed", tmp_path / "recordings.key")
    made.prepare()
    return made


def _lease(db: Session) -> SeatLease:
    session = add_session(db, "agent1", created_at=NOW - timedelta(days=100))
    lease = SeatLease(
        id="lease1",
        session_id=session.id,
        person_id=session.person_id,
        login="agent1",
        app_id="customer-console",
        backend="x11",
        node="node-a",
        seat_id="seat-1",
        state=SeatLeaseState.CONNECTED,
        idle_timeout_seconds=900,
        max_session_seconds=28800,
        started_at=NOW,
        last_activity_at=NOW,
    )
    db.add(lease)
    db.flush()
    return lease


def _sealed_recording(db: Session, files: RecordingFiles, lease: SeatLease, started: datetime) -> ScreenRecording:
    row = recordings.new_recording(db, lease, call_event_id=None, file_name=None, now=started)
    files.plaintext(row.file_name).write_bytes(b"4.sync,1.0;" * (SIZE // 11))
    recordings.close_recording(db, row.id, started + timedelta(minutes=5))
    recordings.mark_sealed(db, row.id, files.seal(row.id, row.file_name), started + timedelta(minutes=5))
    return row


def _audit(db: Session, action: str) -> list[tuple[str, str]]:
    rows = db.exec(select(AuditEvent).where(AuditEvent.action == action).order_by(col(AuditEvent.seq))).all()
    return [(row.target, row.outcome) for row in rows]


def test_recordings_past_retention_are_purged_and_the_rest_kept(db: Session, files: RecordingFiles) -> None:
    lease = _lease(db)
    old = [_sealed_recording(db, files, lease, NOW - timedelta(days=days)) for days in (95, 91)]
    young = _sealed_recording(db, files, lease, NOW - timedelta(days=89))
    purged = recordings.purge(
        db, files, RecordingSettings(retention_days=90, free_space_floor_bytes=0), "node-a", NOW, ALARM
    )
    assert purged == [row.id for row in old]
    assert [db.get(ScreenRecording, row.id).state for row in (*old, young)] == [  # type: ignore[union-attr]
        RecordingState.PURGED,
        RecordingState.PURGED,
        RecordingState.SEALED,
    ]
    assert not files.sealed_file(old[0].id).exists() and files.sealed_file(young.id).exists()
    assert _audit(db, "recording.purge") == [(old[0].id, "retention"), (old[1].id, "retention")]


def test_over_the_quota_the_oldest_go_first_and_a_full_quota_refuses_a_new_recording(
    db: Session, files: RecordingFiles
) -> None:
    lease = _lease(db)
    rows = [_sealed_recording(db, files, lease, NOW - timedelta(hours=hours)) for hours in (3, 2, 1)]
    size = rows[0].size_bytes or 0
    settings = RecordingSettings(quota_bytes=int(size * 2.5), free_space_floor_bytes=0)
    assert recordings.purge(db, files, settings, "node-a", NOW, ALARM) == [rows[0].id]
    assert _audit(db, "recording.purge") == [(rows[0].id, "quota")]

    files.plaintext("still-being-written").write_bytes(b"x" * size)  # an in-progress recording counts too
    assert (
        recordings.begin_recording(db, lease, call_event_id=None, files=files, settings=settings, now=NOW, alarm=ALARM)
        is None
    )
    refused = db.exec(select(AuditEvent).where(AuditEvent.action == "recording.start")).all()[-1]
    assert (refused.target, refused.outcome) == (lease.id, "refused") and "quota" in refused.detail
    alert = db.exec(select(Alert).where(Alert.rule == RECORDING_STORAGE)).one()
    assert alert.open_key == "recording_storage:node-a" and "quota" in alert.message
    assert (
        recordings.begin_recording(db, lease, call_event_id=None, files=files, settings=settings, now=NOW, alarm=ALARM)
        is None
    )
    assert len(db.exec(select(Alert)).all()) == 1, "one open alert while the condition holds"

    files.plaintext("still-being-written").unlink()
    recordings.purge(db, files, settings, "node-a", NOW, ALARM)
    assert db.get(Alert, alert.id).resolved_at is not None  # type: ignore[union-attr]
    started = recordings.begin_recording(
        db, lease, call_event_id=None, files=files, settings=settings, now=NOW, alarm=ALARM
    )
    assert started is not None and started.state is RecordingState.RECORDING


def test_the_free_space_floor_refuses_a_new_recording_whatever_the_quota(db: Session, files: RecordingFiles) -> None:
    lease = _lease(db)
    settings = RecordingSettings(free_space_floor_bytes=2**62)  # more than any disk has free
    assert (
        recordings.begin_recording(db, lease, call_event_id=None, files=files, settings=settings, now=NOW, alarm=ALARM)
        is None
    )
    refused = db.exec(select(AuditEvent).where(AuditEvent.action == "recording.start")).all()[-1]
    assert refused.outcome == "refused" and "free" in refused.detail
    roomy = RecordingSettings(free_space_floor_bytes=0)
    assert (
        recordings.begin_recording(db, lease, call_event_id=None, files=files, settings=roomy, now=NOW, alarm=ALARM)
        is not None
    )
