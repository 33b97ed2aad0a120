"""This node's seat broker: the X11 seat pool, made to match the seat leases in the database.

The leases are the desired state; the `seats.pool` and `seats.limits` workers (`workers.py`) drive the broker:
a lease that ends is stopped and wiped at once (its nudge), a session that ends ends its leases, and `reconcile()`
on a schedule is the safety net: seats no live lease holds are recycled, dead seats end their lease (audited) and
are replaced, warm seats are topped up for the policy in force.

Each X11 seat's app reads its call state from a file fixed when the (warm) seat started; the broker
keeps that file equal to the holder's customer calls in the database (`feed_call_state`): at once on a
voice call-state change or a new lease (nudges), and on every reconcile (a call applied on another node).

Supervision's "watch" asks it for a one-time view-only link to an agent's seat
(`gateway.supervision.viewing.seat_broker_viewer` finds it on ``app.state.seat_broker``).
"""

import logging
import subprocess
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Engine
from sqlmodel import Session

from desktop_broker.guacamole.gate import LaunchGate
from desktop_broker.guacamole.rdp_certificate import rdp_certificate_fingerprint
from desktop_broker.guacamole.token import derive_token_key
from desktop_broker.pool import SeatKind, SeatPool, SeatUnavailable
from desktop_broker.x11 import SeatError, SeatSpec, open_authenticated, start_seat
from desktop_broker.x11.users import end_earlier_lives
from gateway import events
from gateway.audit.service import record
from gateway.clock import Clock
from gateway.db import session_scope
from gateway.policies.service import current_policy
from gateway.seats import service
from gateway.seats.endings import VIEW_ENDED, EndingSignal
from gateway.seats.errors import GuacamoleUnavailable, NoSeatFree
from gateway.seats.launch_store import DbLaunchStore
from gateway.seats.models import SeatEndReason, SeatLease, SeatLeaseState
from gateway.seats.recordings import StorageAlarm
from gateway.seats.screen_recorder import SeatRecorders
from gateway.seats.settings import RecordingSettings, SeatSettings
from gateway.seats.thumbnails import SeatThumbnails
from gateway.sessions.models import HomeSession, SessionState
from gateway.sessions.service import SESSION_ENDED
from gateway.voice.calls import CallStateChange, current_call_state, write_call_state_file
from policy import DisplayRules, PolicyDocument, X11App, evaluate

log = logging.getLogger(__name__)
ENDINGS = (service.SEAT_ENDED, SESSION_ENDED, VIEW_ENDED)
"""Ends that close a live Guacamole connection at once (a seat, a home session, a supervisor's watch)."""


@dataclass
class SeatBroker:
    """One per gateway process; `stop()` stops every seat it runs."""

    engine: Engine
    settings: SeatSettings
    node: str
    clock: Clock
    pool: SeatPool | None
    recording_storage_alarm: StorageAlarm
    """Raised when storage refuses a recording, cleared when a purge made room (supervision's, handed down)."""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _fed: dict[str, CallStateChange] = field(default_factory=dict)
    """The call state last written to each seat's file, so a reconcile pass rewrites only what changed."""
    _feed_lock: threading.Lock = field(default_factory=threading.Lock)
    recorders: SeatRecorders | None = None
    """This node's screen recordings (None when recording is not set up: no sealed directory or key)."""
    endings: EndingSignal = field(default_factory=EndingSignal)
    """Wakes guacamole-lite's held liveness questions when a seat or session ends here (`routes/internal.py:alive`)."""
    thumbnails: SeatThumbnails = field(default_factory=lambda: SeatThumbnails(interval=2.0))
    """Pictures of this node's seats for the supervisors' screen wall."""

    @property
    def token_lifetime(self) -> timedelta:
        return timedelta(seconds=self.settings.launch_token_seconds)

    def kind(self, app: X11App, rules: DisplayRules) -> SeatKind:
        """The seat kind for an app: `python` in its command means the interpreter the settings name."""
        argv = tuple(app.command)
        if argv and argv[0] in ("python", "python3"):
            argv = (self.settings.app_python, *argv[1:])
        return SeatKind(app.id, argv, rules, app.limits, app.backends)

    def warm_kinds(self, document: PolicyDocument) -> list[SeatKind]:
        """One kind per X11 app and group publishing it: what a member of that group alone would get."""
        kinds = []
        for group in document.groups:
            effective = evaluate(document, [group], self.clock())
            kinds += [self.kind(app, effective.display) for app in effective.apps if isinstance(app, X11App)]
        return kinds

    def runs(self, lease: SeatLease) -> bool:
        return self.pool is not None and lease.node == self.node and self.pool.get(lease.seat_id) is not None

    def assign(self, app: X11App, rules: DisplayRules, *, holder: str, label: str) -> tuple[str, str]:
        if self.pool is None:
            raise NoSeatFree("X11 seats are switched off on this node; ask the administrator")
        try:
            seat = self.pool.assign(self.kind(app, rules), holder, label)
        except SeatUnavailable as error:
            raise NoSeatFree(str(error)) from None
        except SeatError as error:
            log.error("seat for %s could not start: %s", holder, error)
            raise NoSeatFree("the seat could not start; try again, and tell the administrator if it persists") from None
        return seat.seat_id, str(seat.process.rfb_address)

    def guacamole_gate(self, db: Session, now: datetime) -> LaunchGate:
        """The gate over the launches in `db` (guacamole-lite's loopback redemption uses it as is)."""
        secret = self.settings.guacamole_secret
        if secret is None:
            raise GuacamoleUnavailable("Guacamole is off on this gateway: seats.guacamole_secret is not set")
        return LaunchGate(
            derive_token_key(secret.get_secret_value().encode()),
            DbLaunchStore(db, self.clock),
            lambda: now,
            lifetime=self.token_lifetime,
        )

    def guacamole_launch_gate(self, db: Session, now: datetime) -> LaunchGate:
        """The gate for a portal launch, which also needs the websocket URL the page will open."""
        if self.settings.guacamole_websocket_url is None:
            raise GuacamoleUnavailable("Guacamole is off on this gateway: seats.guacamole_websocket_url is not set")
        return self.guacamole_gate(db, now)

    def rdp_certificate(self, host: str, port: int) -> str:
        return rdp_certificate_fingerprint(host, port)

    def guacamole_password(self, app_id: str) -> str | None:
        path = self.settings.guacamole_passwords.get(app_id)
        if path is None:
            return None
        try:
            return path.read_text().rstrip("\n")
        except OSError as error:
            raise GuacamoleUnavailable(f"the password file of {app_id} cannot be read: {error.strerror}") from None

    def recording_settings(self) -> RecordingSettings | None:
        return self.recorders.settings if self.recorders is not None else None

    def reconcile_recordings(self) -> None:
        """Start, stop, seal and purge this node's recordings (the ``seats.recordings`` worker's pass)."""
        if self.recorders is not None:
            try:
                self.recorders.reconcile()
            except OSError as error:  # a full or missing disk must not stop the seats; the next pass retries
                log.error("screen recordings not reconciled: %s", error)

    def feed_call_state(self, session_id: str | None = None) -> None:
        """Write the holder's current call state into each held seat's file (of one session, or all).

        Read from the database, not from the nudge: the latest committed state wins whatever order nudges
        arrive in. A seat stopping meanwhile loses its directory; that write is skipped.
        """
        if self.pool is None:
            return
        with session_scope(self.engine) as db:
            leases = [lease for lease in service.live_leases(db, self.node) if session_id in (None, lease.session_id)]
            states = {lease.seat_id: current_call_state(db, lease.session_id) for lease in leases}
        with self._feed_lock:
            for seat_id, state in states.items():
                seat = self.pool.get(seat_id)
                if seat is None or seat.call_state_file is None or state is None or self._fed.get(seat_id) == state:
                    continue
                try:
                    write_call_state_file(seat.call_state_file, state)
                except OSError as error:
                    log.info("call state of seat %s not written: %s", seat_id, error)
                    continue
                self._fed[seat_id] = state
            if session_id is None:
                self._fed = {seat_id: state for seat_id, state in self._fed.items() if seat_id in states}

    def release(self, seat_id: str) -> None:
        """Stop and wipe one of this node's seats (its lease ended); ~0.1-1 s, so never in a request."""
        if self.pool is not None:
            self.pool.release(seat_id)

    def warm_up(self) -> None:
        """The first pass after start: end what an earlier life of the gateway left, then fill the pool."""
        if self.pool is not None:
            try:
                ended = end_earlier_lives(self.settings.call_state_root)
            except (SeatError, OSError) as error:
                log.error("seats of an earlier life could not be ended: %s", error)
            else:
                if ended:
                    log.warning("ended %d seats left by an earlier life: %s", len(ended), ", ".join(ended))
                    with session_scope(self.engine) as db:
                        record(
                            db,
                            actor="gateway",
                            action="seat.earlier_life_ended",
                            target=self.node,
                            outcome="success",
                            detail={"seat_users": ended},
                            clock=self.clock,
                        )
        self.reconcile()

    def reconcile(self) -> None:
        """Make the pool match the leases; idempotent, safe to run at any time (one run at a time)."""
        if self.pool is None or not self._lock.acquire(blocking=False):
            return
        try:
            self._reconcile(self.pool)
        finally:
            self._lock.release()

    def _reconcile(self, pool: SeatPool) -> None:
        # A launch holds its seat a moment before its lease commits: seats assigned within a token's
        # lifetime are not orphans yet (a launch that rolled back is recycled on a later pass).
        settled = self.clock() - self.token_lifetime
        with session_scope(self.engine) as db:
            pool.want_warm(self.warm_kinds(current_policy(db)))
            leases = {lease.id: lease for lease in service.live_leases(db, self.node)}
            for dead in pool.find_dead():
                if dead.holder in leases:
                    service.end_seat(
                        db, leases[dead.holder], SeatEndReason.CRASHED, self.clock(), detail={"failure": dead.failure}
                    )
        for seat_id, holder in pool.held(assigned_before=settled).items():
            if holder not in leases:
                pool.release(seat_id)
        pool.fill()
        self.feed_call_state()

    def idle_seconds(self, lease: SeatLease, now: datetime) -> float | None:
        """Seconds since the last keyboard or pointer input on the lease's seat; None if not measurable here.

        An X11 seat's display says it itself; a Guacamole seat's display is on the RDP or VNC host, so its idle time
        is what guacamole-lite reported, on whichever node (stored on the lease)."""
        if lease.backend == "guacamole":
            return service.browser_idle_seconds(lease, now)
        seat = self.pool.get(lease.seat_id) if self.pool is not None and lease.node == self.node else None
        if seat is None:
            return None
        try:
            return seat.process.idle_seconds()
        except (subprocess.SubprocessError, OSError, ValueError) as error:  # a dying display; reconcile reports it
            log.warning("idle time of seat %s unreadable: %s", lease.seat_id, error)
            return None

    def enforce_limits(self) -> int:
        """End this node's seats whose session ended, or that ran idle, too long or unreconnected; audited."""
        now, grace = self.clock(), timedelta(seconds=self.settings.reconnect_grace_seconds)
        ended = 0
        with session_scope(self.engine) as db:
            for lease in service.live_leases(db, self.node):
                session = db.get(HomeSession, lease.session_id)
                if session is None or session.state is not SessionState.ACTIVE:
                    reason: SeatEndReason | None = SeatEndReason.SESSION_ENDED
                elif lease.backend == "x11" and not self.runs(lease):
                    reason = SeatEndReason.LOST
                else:
                    idle = self.idle_seconds(lease, now)
                    service.note_input(db, lease, now, idle)
                    reason = service.overdue(lease, now, idle, grace)
                if reason is not None:
                    service.end_seat(db, lease, reason, now)
                    ended += 1
        return ended

    def screen_thumbnail(self, db: Session, agent: HomeSession) -> bytes | None:
        """Supervision's screen wall: a small JPEG of the agent's seat launched on this node — an X11 seat of its pool,
        or a Guacamole seat whose guacd connection is up (read through ``seats.guacd_address``); None otherwise."""
        for lease in service.live_leases_of(db, agent.id, self.node):
            if lease.backend == "x11" and self.pool is not None:
                seat = self.pool.get(lease.seat_id)
                if seat is not None and seat.holder == lease.id:
                    return self.thumbnails.picture(seat)
            elif lease.backend == "guacamole" and lease.state is SeatLeaseState.CONNECTED and lease.connection_id:
                guacd = self.settings.guacd()
                if guacd is not None:
                    return self.thumbnails.joined_picture(guacd, lease.id, lease.connection_id)
        return None

    def end_stale_joins(self) -> None:
        """Close the screen wall's joins of Guacamole connections whose lease ended or moved to another connection
        (the ``seats.pool`` worker's every pass: at once on this node's ``seat.ended``, else within its interval)."""
        if not self.thumbnails.joined_leases():
            return
        with session_scope(self.engine) as db:
            leases = service.live_leases(db, self.node)
            live = {(lease.id, lease.connection_id) for lease in leases if lease.backend == "guacamole"}
        self.thumbnails.keep_joins({(lease_id, connection) for lease_id, connection in live if connection})

    def stop(self) -> None:
        self.thumbnails.stop()
        for topic in ENDINGS:
            events.unlisten(topic, self.endings.notify)
        if self.recorders is not None:
            self.recorders.stop()
        with self._lock:  # a warm-up still starting seats finishes first, so none is left behind
            if self.pool is not None:
                self.pool.stop_all()


def start_broker(app: FastAPI, settings: SeatSettings | None = None) -> SeatBroker:
    """Make this node's broker for the app (the lifespan does; `stop()` on the way out). Its seats are started by
    the `seats.pool` worker (`workers.py`), so the gateway answers at once."""
    settings = settings or getattr(app.state.settings, "seats", None) or SeatSettings()
    pool = None
    if settings.enabled:

        def start(spec: SeatSpec) -> Any:
            return start_seat(spec, homes_root=settings.homes_root, runtime_root=settings.runtime_root)

        pool = SeatPool(
            start=start,
            node_cap=settings.cap_per_node,
            warm_per_kind=settings.warm_per_app,
            call_state_root=settings.call_state_root,
            now=app.state.clock,
            open_standby=lambda process, passwords: open_authenticated(process.rfb_address, passwords.full_access),
        )
    node = app.state.settings.node_name
    alarm = app.state.recording_storage_alarm
    broker = SeatBroker(app.state.engine, settings, node, app.state.clock, pool, alarm)
    if settings.recording.sealed_dir is not None and settings.recording.key_file is not None:
        recorders = SeatRecorders(
            app.state.engine,
            settings.recording,
            node,
            app.state.clock,
            pool.get if pool else lambda _seat: None,
            alarm,
        )
        try:
            recorders.files.prepare()
        except OSError as error:  # the gateway serves on without recordings, and says why
            log.error("screen recording is off on this node: %s (seats.recording in docs/settings.md)", error)
        else:
            broker.recorders = recorders
    for topic in ENDINGS:  # only wakes held questions (each re-reads the database in its own request)
        events.listen(topic, broker.endings.notify)
    app.state.seat_broker = broker
    return broker
