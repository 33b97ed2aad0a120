"""A gateway killed while recording leaves rows in ``recording``: the next recordings pass closes and seals them.

The crash is made as a crash leaves it: the rows written by the previous process (state ``recording``), guacd's
plaintext in the in-progress directory, held open by a real process until that process is killed (SIGKILL), and
no recorder of the new process knows them.
"""

import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import col, select

from desktop_broker.recording.sealing import open_sealed
from gateway.audit.models import AuditEvent
from gateway.db import session_scope
from gateway.seats import recordings
from gateway.seats.models import RecordingState, ScreenRecording, SeatLease, SeatLeaseState
from gateway.seats.screen_recorder import SeatRecorders
from gateway.seats.settings import RecordingSettings
from gateway.supervision.alerts import RecordingStorageAlarm
from tests.gateway.supervision.conftest import add_session

NOW = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
WRITTEN = b"4.size,1.0,4.1280,3.800;4.sync,4.1000;" * 50
HOLD_OPEN = "import sys, time; f = open(sys.argv[1], 'ab'); print('open', flush=True); time.sleep(600)"


def _left_recording(engine: Engine, node: str, login: str) -> tuple[str, str]:
    """A recording row in ``recording`` as the killed process wrote it, for a lease on ``node``."""
    with session_scope(engine) as db:
        session = add_session(db, login, created_at=NOW)
        lease = SeatLease(
            id=f"lease-{login}",
            session_id=session.id,
            person_id=session.person_id,
            login=login,
            app_id="customer-console",
            backend="x11",
            node=node,
            seat_id=f"seat-{login}",
            state=SeatLeaseState.CONNECTED,
            idle_timeout_seconds=900,
            max_session_seconds=28800,
            started_at=NOW,
            last_activity_at=NOW,
        )
        db.add(lease)
        db.flush()
        row = recordings.new_recording(db, lease, call_event_id=None, file_name=None, now=NOW)
        return row.id, row.file_name


def _state(engine: Engine, recording_id: str) -> RecordingState:
    with session_scope(engine) as db:
        row = db.get(ScreenRecording, recording_id)
        assert row is not None
        return row.state


def test_a_recording_left_by_a_killed_gateway_is_closed_and_sealed_once_nobody_holds_its_file(
    engine: Engine, tmp_path: Path
) -> None:
    settings = RecordingSettings(
        in_progress_dir=tmp_path / "in-progress",
        sealed_dir=tmp_path / "sealed",
        key_file=tmp_path / "recordings.key",
        free_space_floor_bytes=0,
    )
    # The new process: no seat is running for the old leases (seat_of finds none), so it starts no recording.
    recorders = SeatRecorders(engine, settings, "node-a", lambda: NOW, lambda _seat: None, RecordingStorageAlarm())
    recorders.files.prepare()
    cut, cut_file = _left_recording(engine, "node-a", "agent1")
    empty, _ = _left_recording(engine, "node-a", "agent2")
    elsewhere, _ = _left_recording(engine, "node-b", "agent3")
    plaintext = recorders.files.plaintext(cut_file)
    plaintext.write_bytes(WRITTEN)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_OPEN, str(plaintext)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        recorders.reconcile()
        assert _state(engine, cut) is RecordingState.CLOSED, "closed, but not sealed while a process holds the file"
        assert plaintext.exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()

    recorders.reconcile()
    assert [_state(engine, r) for r in (cut, empty, elsewhere)] == [
        RecordingState.SEALED,
        RecordingState.FAILED,
        RecordingState.RECORDING,  # another node's gateway may still be recording it
    ]
    assert not plaintext.exists()
    key = recorders.files.key()
    assert b"".join(open_sealed(key, cut, recorders.files.sealed_file(cut))) == WRITTEN
    with session_scope(engine) as db:
        audit = db.exec(
            select(AuditEvent).where(AuditEvent.action == "recording.seal").order_by(col(AuditEvent.seq))
        ).all()
        assert [(e.target, e.outcome) for e in audit] == [(empty, "failed"), (cut, "sealed")]
