"""This node's recordings made to match the leases: X11 seats through the gateway's own guacd connection, and the
files guacd writes for Guacamole seats closed, sealed and purged.

`SeatRecorders.reconcile` runs on the broker's schedule and after every nudge that can change what is wanted (a
seat assigned or ended, a customer call answered or ended). It never holds a transaction while it talks to guacd
or encrypts a file: it decides in one short transaction, acts, and records each outcome in another.

What is wanted for an X11 lease: policy records the app for the agent (`EffectivePolicy.records`), and, when the
policy records during customer calls only, a call is answered on the agent's leg — then one recording per call.
A recording's connection is opened once and kept: guacd and x11vnc do the work, the agent's frames never wait for
it (bench/bench_recording.py measures that).
"""

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine

from desktop_broker.pool import PooledSeat
from desktop_broker.recording.guacd_recorder import GuacdRecorder, RecorderFailed, RecordingTarget
from gateway.clock import Clock
from gateway.db import session_scope
from gateway.policies.service import current_policy
from gateway.seats import recordings, service
from gateway.seats.models import RecordingState, SeatLease
from gateway.seats.recording_files import RecordingFiles, held_open
from gateway.seats.settings import RecordingSettings
from gateway.sessions.service import get_session, policy_groups
from policy import evaluate

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Wanted:
    lease_id: str
    call_event_id: int | None


@dataclass
class _Running:
    recording_id: str
    wanted: _Wanted
    recorder: GuacdRecorder


@dataclass
class SeatRecorders:
    """One per broker; `stop()` closes every recording connection (the files are sealed by the next start's pass)."""

    engine: Engine
    settings: RecordingSettings
    node: str
    clock: Clock
    seat_of: Callable[[str], PooledSeat | None]
    alarm: recordings.StorageAlarm
    """Raised when storage refuses a recording, cleared when a purge made room (supervision's, from the app)."""
    _running: dict[_Wanted, _Running] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def files(self) -> RecordingFiles:
        return RecordingFiles.of(self.settings)

    def guacd(self) -> tuple[str, int]:
        host, _, port = self.settings.guacd_address.rpartition(":")
        return host, int(port)

    def reconcile(self) -> None:
        """One pass (one at a time): stop what is no longer wanted, start what is, seal what closed, purge."""
        with self._lock:
            self.files.prepare()
            wanted = self.wanted()
            for key in [
                key for key, running in self._running.items() if key not in wanted or running.recorder.closed.is_set()
            ]:
                self._stop(self._running.pop(key))
            for key, lease in wanted.items():
                if key not in self._running:
                    self._start(key, lease)
            self._close_guacamole_recordings()
            self._close_left_behind()
            self._seal_closed()
            with session_scope(self.engine) as db:
                recordings.purge(db, self.files, self.settings, self.node, self.clock(), self.alarm)

    def stop(self) -> None:
        with self._lock:
            for running in self._running.values():
                self._stop(running)
            self._running.clear()

    def wanted(self) -> dict[_Wanted, SeatLease]:
        """The recordings this node's X11 leases should have now, keyed by lease and (calls only) call."""
        now = self.clock()
        wanted: dict[_Wanted, SeatLease] = {}
        with session_scope(self.engine) as db:
            document = current_policy(db)
            for lease in service.live_leases(db, self.node):
                agent = get_session(db, lease.session_id)
                if lease.backend != "x11" or agent is None or self.seat_of(lease.seat_id) is None:
                    continue
                effective = evaluate(document, policy_groups(agent), now)
                call = recordings.answered_call(db, lease.session_id)
                if effective.records(lease.app_id, in_customer_call=call is not None):
                    key = _Wanted(lease.id, call if effective.recording_customer_calls_only else None)
                    wanted[key] = lease
        return wanted

    def _start(self, key: _Wanted, lease: SeatLease) -> None:
        seat = self.seat_of(lease.seat_id)
        if seat is None:
            return
        files = self.files
        with session_scope(self.engine) as db:
            row = recordings.begin_recording(
                db,
                lease,
                call_event_id=key.call_event_id,
                files=files,
                settings=self.settings,
                now=self.clock(),
                alarm=self.alarm,
            )
            if row is None:
                return
            recording_id, file_name = row.id, row.file_name
        address = seat.process.rfb_address
        target = RecordingTarget(address.host, address.port, seat.passwords.view_only, files.in_progress, file_name)
        recorder = GuacdRecorder(*self.guacd(), target)
        try:
            recorder.start()
        except RecorderFailed as error:
            with session_scope(self.engine) as db:
                recordings.close_recording(db, recording_id, self.clock(), problem=str(error))
            return
        self._running[key] = _Running(recording_id, key, recorder)

    def _stop(self, running: _Running) -> None:
        running.recorder.stop()
        with session_scope(self.engine) as db:
            recordings.close_recording(db, running.recording_id, self.clock())

    def _close_guacamole_recordings(self) -> None:
        """A Guacamole seat's recording ends with its lease (guacd ends the connection then)."""
        with session_scope(self.engine) as db:
            for row in recordings.recordings_in(db, self.node, RecordingState.RECORDING):
                lease = db.get(SeatLease, row.lease_id)
                if row.backend == "guacamole" and (lease is None or lease.state not in service.LIVE):
                    recordings.close_recording(db, row.id, self.clock())

    def _close_left_behind(self) -> None:
        """Close the X11 recordings of this node that no connection of this process makes: a gateway that was killed
        left them in ``recording``. Its guacd connection ended with its socket, so guacd has stopped writing (the
        file ends where it stopped); `_seal_closed` seals it once no process holds it, or marks it failed without
        a file. Runs under the pass's lock, after `_start`, so a recording this process is opening is in `_running`.
        """
        ours = {running.recording_id for running in self._running.values()}
        with session_scope(self.engine) as db:
            for row in recordings.recordings_in(db, self.node, RecordingState.RECORDING):
                if row.backend == "x11" and row.id not in ours:
                    log.warning("closing recording %s left open by a gateway that stopped without ending it", row.id)
                    recordings.close_recording(db, row.id, self.clock())

    def _seal_closed(self) -> None:
        files = self.files
        with session_scope(self.engine) as db:
            closed = [(row.id, row.file_name) for row in recordings.recordings_in(db, self.node, RecordingState.CLOSED)]
        for recording_id, file_name in closed:
            plaintext = files.plaintext(file_name)
            if not plaintext.exists():
                with session_scope(self.engine) as db:
                    recordings.fail_closed(db, recording_id, self.clock(), "guacd wrote no recording file")
                continue
            if held_open(plaintext):
                continue  # guacd frees the connection (and closes the file) a moment after it ends
            size = files.seal(recording_id, file_name)
            with session_scope(self.engine) as db:
                recordings.mark_sealed(db, recording_id, size, self.clock())
