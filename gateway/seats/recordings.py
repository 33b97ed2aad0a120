"""Screen recordings in the database: start (within the disk quota), close, seal, purge, and who may play them.

A recording row is written before guacd is asked to record, so every file on disk has a row and an audit trail
(``recording.start|seal|play|purge``, target the recording's id, detail with person, session, lease, seat and
call). Storage is bounded twice: sealed plus in-progress bytes under `quota_bytes`, and the disk's free space above
`free_space_floor_bytes`; when either would be crossed a new recording is refused (audited) and supervisors get
the ``recording_storage`` alert, so recording can never fill the gateway's disk.
"""

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Protocol

from sqlmodel import Session, col, func, select

from gateway.audit.service import record
from gateway.clock import as_utc
from gateway.errors import NotFound
from gateway.seats.models import RecordingState, ScreenRecording, SeatLease
from gateway.seats.recording_files import RecordingFiles
from gateway.seats.settings import RecordingSettings
from gateway.sessions.models import HomeSession
from gateway.voice.models import CallEvent

"""The alert rule raised when a recording was refused for want of room; resolved when room is back."""


def answered_call(db: Session, session_id: str) -> int | None:
    """The id of the customer call answered on the session's leg and not ended yet, if any."""
    latest = db.exec(
        select(CallEvent)
        .where(CallEvent.session_id == session_id, col(CallEvent.kind).startswith("call."))
        .order_by(col(CallEvent.at).desc(), col(CallEvent.id).desc())
    ).first()
    return latest.id if latest is not None and latest.kind == "call.answered" else None


def bytes_used(db: Session, files: RecordingFiles) -> int:
    sealed = db.exec(
        select(func.coalesce(func.sum(ScreenRecording.size_bytes), 0)).where(
            ScreenRecording.state == RecordingState.SEALED
        )
    ).one()
    return int(sealed or 0) + files.bytes_in_progress()


def storage_refusal(db: Session, files: RecordingFiles, settings: RecordingSettings) -> str | None:
    """Why no recording may start now (quota or free-space floor reached), or None."""
    used = bytes_used(db, files)
    if used >= settings.quota_bytes:
        return f"recordings use {used} bytes, the quota is {settings.quota_bytes}"
    free = files.free_bytes()
    if free <= settings.free_space_floor_bytes:
        return f"{free} bytes free on the recordings disk, the floor is {settings.free_space_floor_bytes}"
    return None


def _audit(db: Session, recording: ScreenRecording, action: str, outcome: str, now: datetime, **extra: object) -> None:
    """One audit row of the recording's life, by the system, naming whose seat and call it is."""
    detail = {
        "person": recording.person_id,
        "session": recording.session_id,
        "lease": recording.lease_id,
        "seat": recording.seat_id,
        "app": recording.app_id,
        "call": recording.call_event_id,
        **extra,
    }
    record(db, actor="system", action=action, target=recording.id, outcome=outcome, detail=detail, clock=lambda: now)


class StorageAlarm(Protocol):
    """Tells supervisors that a node refuses new recordings for lack of room, and that it has room again:
    supervision's alert (``supervision.alerts.RecordingStorageAlarm``), handed down by the app (supervision sits above
    seats)."""

    def refused(self, db: Session, node: str, refusal: str, now: datetime) -> None: ...

    def room_again(self, db: Session, node: str, now: datetime) -> None: ...


def refuse_recording(db: Session, lease: SeatLease, refusal: str, now: datetime, alarm: StorageAlarm) -> None:
    """No room for a new recording of the lease: audited, and the node's storage alarm raised."""
    record(
        db,
        actor="system",
        action="recording.start",
        target=lease.id,
        outcome="refused",
        detail={"person": lease.person_id, "session": lease.session_id, "lease": lease.id, "reason": refusal},
        clock=lambda: now,
    )
    alarm.refused(db, lease.node, refusal, now)


def begin_recording(
    db: Session,
    lease: SeatLease,
    *,
    call_event_id: int | None,
    files: RecordingFiles,
    settings: RecordingSettings,
    now: datetime,
    alarm: StorageAlarm,
) -> ScreenRecording | None:
    """A new recording row for an X11 lease, or None when storage refuses (audited, alerted)."""
    refusal = storage_refusal(db, files, settings)
    if refusal is not None:
        refuse_recording(db, lease, refusal, now, alarm)
        return None
    return new_recording(db, lease, call_event_id=call_event_id, file_name=None, now=now)


def new_recording(
    db: Session, lease: SeatLease, *, call_event_id: int | None, file_name: str | None, now: datetime
) -> ScreenRecording:
    """The row (state ``recording``) and its audit row; `file_name` is guacd's recording name when the launch
    already chose it (Guacamole seats), else the row's id. The caller checked the storage."""
    recording_id = uuid.uuid4().hex
    recording = ScreenRecording(
        id=recording_id,
        person_id=lease.person_id,
        login=lease.login,
        session_id=lease.session_id,
        lease_id=lease.id,
        seat_id=lease.seat_id,
        app_id=lease.app_id,
        backend=lease.backend,
        node=lease.node,
        call_event_id=call_event_id,
        file_name=file_name or recording_id,
        state=RecordingState.RECORDING,
        started_at=now,
    )
    db.add(recording)
    db.flush()
    _audit(db, recording, "recording.start", "started", now)
    return recording


def close_recording(db: Session, recording_id: str, now: datetime, problem: str | None = None) -> None:
    """The connection ended (``closed``, sealed next) or never started (``failed``, with guacd's answer)."""
    recording = db.get(ScreenRecording, recording_id)
    if recording is None or recording.state is not RecordingState.RECORDING:
        return
    recording.state = RecordingState.FAILED if problem else RecordingState.CLOSED
    recording.ended_at, recording.problem = now, (problem or None) and problem[:500]
    db.add(recording)
    db.flush()
    if problem:
        _audit(db, recording, "recording.start", "failed", now, problem=problem)


def fail_closed(db: Session, recording_id: str, now: datetime, problem: str) -> None:
    """A closed recording with nothing to seal (guacd could not write it): ``failed``, audited."""
    recording = db.get(ScreenRecording, recording_id)
    if recording is None or recording.state is not RecordingState.CLOSED:
        return
    recording.state, recording.problem = RecordingState.FAILED, problem[:500]
    db.add(recording)
    db.flush()
    _audit(db, recording, "recording.seal", "failed", now, problem=problem)


def recordings_in(db: Session, node: str, state: RecordingState) -> list[ScreenRecording]:
    query = select(ScreenRecording).where(ScreenRecording.node == node, ScreenRecording.state == state)
    return list(db.exec(query.order_by(col(ScreenRecording.started_at))).all())


def mark_sealed(db: Session, recording_id: str, size: int, now: datetime) -> None:
    recording = db.get(ScreenRecording, recording_id)
    if recording is None:
        return
    recording.state, recording.size_bytes, recording.sealed_at = RecordingState.SEALED, size, now
    db.add(recording)
    db.flush()
    _audit(db, recording, "recording.seal", "sealed", now, bytes=size)


def purge(
    db: Session, files: RecordingFiles, settings: RecordingSettings, node: str, now: datetime, alarm: StorageAlarm
) -> list[str]:
    """Delete this node's sealed recordings past retention, then the oldest until the quota has room; audited."""
    purged: list[str] = []
    cutoff = now - timedelta(days=settings.retention_days)
    sealed = recordings_in(db, node, RecordingState.SEALED)
    used = bytes_used(db, files)
    for recording in sealed:
        if as_utc(recording.started_at) < cutoff:
            reason = "retention"
        elif used > settings.quota_bytes:
            reason = "quota"
        else:
            continue
        files.remove(recording.id, recording.file_name)
        used -= recording.size_bytes or 0
        recording.state, recording.purged_at = RecordingState.PURGED, now
        db.add(recording)
        db.flush()
        _audit(db, recording, "recording.purge", reason, now, bytes=recording.size_bytes)
        purged.append(recording.id)
    if storage_refusal(db, files, settings) is None:
        alarm.room_again(db, node, now)
    return purged


def session_recordings(db: Session, session_id: str) -> list[ScreenRecording]:
    query = select(ScreenRecording).where(ScreenRecording.session_id == session_id)
    return list(db.exec(query.order_by(col(ScreenRecording.started_at))).all())


def playable(db: Session, agent: HomeSession, recording_id: str) -> ScreenRecording:
    """The agent's sealed recording; `NotFound` for another agent's, an unknown or an unsealed one."""
    recording = db.get(ScreenRecording, recording_id)
    if recording is None or recording.session_id != agent.id or recording.state is not RecordingState.SEALED:
        raise NotFound("no such recording of this agent")
    return recording


def audit_playback(
    db: Session, *, supervisor: HomeSession, target: str, outcome: str, source: str, detail: Mapping[str, object]
) -> None:
    """Every playback and every refused one (``recording.play``), with the supervisor as actor."""
    record(
        db,
        actor=supervisor.login,
        action="recording.play",
        target=target,
        outcome=outcome,
        source=source,
        detail={"supervisor_person": supervisor.person_id, **detail},
    )
