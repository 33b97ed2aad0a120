"""Launch a published app for a home session, and end seats: the lease is the desired state.

`launch` decides (policy), takes a seat and writes the lease and a one-time token in the caller's
transaction: an X11 seat of this node's pool with a token for the gateway's own websocket, or a
Guacamole launch (`LaunchGate`) with policy's compiled guacd parameters for guacamole-lite's.
Every end of a seat goes through `end_seat`, which writes the audit row and, after the commit,
nudges the broker (topic `SEAT_ENDED`) to stop and wipe the seat process.
"""

import secrets
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlmodel import Session, col, select

from desktop_broker.guacamole.gate import LaunchGate
from desktop_broker.guacamole.parameters import LaunchParametersRefused
from gateway.audit.service import record
from gateway.clock import as_utc
from gateway.events import nudge_after_commit
from gateway.policies.service import effective_policy
from gateway.seats.errors import AppNotPublished, GuacamoleUnavailable, NoSeatFree, SeatEndedByLimit
from gateway.seats.launch_store import bind_launch
from gateway.seats.models import SeatEndReason, SeatLease, SeatLeaseState
from gateway.seats.rdp_trust import trusted_fingerprint
from gateway.seats.recording_files import RecordingFiles
from gateway.seats.recordings import StorageAlarm, answered_call, new_recording, refuse_recording, storage_refusal
from gateway.seats.settings import RecordingSettings
from gateway.seats.tokens import mint
from gateway.sessions.models import HomeSession
from gateway.sessions.service import policy_groups
from policy import (
    DisplayRules,
    EffectivePolicy,
    GuacamoleApp,
    PolicyError,
    X11App,
    compile_guacamole,
)

SEAT_ENDED = "seat.ended"
SEAT_ASSIGNED = "seat.assigned"
"""Nudged after the commit of a new X11 lease (payload: the session id): the broker feeds its call state."""
LIVE = (SeatLeaseState.ASSIGNED, SeatLeaseState.CONNECTED)
POLICY_LIMITS = (SeatEndReason.IDLE, SeatEndReason.MAX_LENGTH)
"""Endings the seat page must not undo by reconnecting: the person starts the app again from the workspace."""


class SeatSource(Protocol):
    """What `launch` needs of this node's broker (`gateway.seats.broker.SeatBroker`)."""

    node: str

    @property
    def token_lifetime(self) -> timedelta: ...

    def runs(self, lease: SeatLease) -> bool:
        """Whether this node still runs the lease's seat (false after a restart or on another node)."""
        ...

    def assign(self, app: X11App, rules: DisplayRules, *, holder: str, label: str) -> tuple[str, str]:
        """(seat id, RFB address) of a seat now held by `holder`; `NoSeatFree` when none can be had."""
        ...

    def guacamole_launch_gate(self, db: Session, now: datetime) -> LaunchGate:
        """The gate minting Guacamole launches into `db`; `GuacamoleUnavailable` when not configured."""
        ...

    def rdp_certificate(self, host: str, port: int) -> str:
        """``sha256:…`` of the certificate the RDP host presents now; `RdpCertificateUnavailable` if unreadable."""
        ...

    @property
    def recording_storage_alarm(self) -> StorageAlarm:
        """Raised when storage refuses a recording (supervision's alert, handed down by the app)."""
        ...

    def guacamole_password(self, app_id: str) -> str | None:
        """The password of the app's RDP/VNC account from the gateway's settings (never policy), if it has one."""
        ...

    def recording_settings(self) -> RecordingSettings | None:
        """Where this node keeps screen recordings; None when recording is not set up here."""
        ...


@dataclass(frozen=True, slots=True)
class LaunchedSeat:
    """What the seat page needs: the lease and the one-time token for its websocket (the gateway's
    `/seats/ws` for X11, guacamole-lite's for Guacamole)."""

    lease: SeatLease
    token: str


def launch(db: Session, session: HomeSession, app_id: str, now: datetime, seats: SeatSource) -> LaunchedSeat:
    """Open `app_id` for the session: reuse its live seat (a reconnect) or take a fresh one, and mint a token.

    Refusals (app not published, no seat free, Guacamole not set up) are audited; the caller must commit them.
    """
    effective = effective_policy(db, policy_groups(session), now)
    try:
        app = effective.app(app_id)
    except PolicyError:
        record(
            db,
            actor=session.login,
            source=session.source_ip,
            action="seat.launch",
            target=app_id,
            outcome="refused",
            detail={
                "reason": "not published to this person",
                "session": session.id,
                "groups": effective.groups,
                "person": session.person_id,
            },
        )
        raise AppNotPublished(f"the app {app_id!r} is not published to you; ask your security administrator") from None
    lease = live_lease(db, session.id, app_id)
    if isinstance(app, GuacamoleApp):
        return _launch_guacamole(db, session, app, effective, lease, now, seats)
    if lease is not None and not seats.runs(lease):
        end_seat(db, lease, SeatEndReason.LOST, now)
        lease = None
    if lease is None:
        lease = _take_seat(db, session, app, effective, now, seats)
    return LaunchedSeat(lease, mint(db, lease, session, now, seats.token_lifetime))


def reconnect(db: Session, session: HomeSession, app_id: str, now: datetime, seats: SeatSource) -> LaunchedSeat:
    """The seat page's own reconnect after its connection dropped: `launch` (the live seat again, or a fresh one
    after a crash or a restart), unless policy's idle timeout or maximum length ended the app's last seat — then
    `SeatEndedByLimit`, audited, and the page says why instead of taking a new seat by itself."""
    if live_lease(db, session.id, app_id) is None:
        last = db.exec(
            select(SeatLease)
            .where(SeatLease.session_id == session.id, SeatLease.app_id == app_id)
            .order_by(col(SeatLease.started_at).desc())
        ).first()
        ended = last.end_reason if last is not None else None
        if last is not None and ended in POLICY_LIMITS:
            _refused(db, session, app_id, ended, action="seat.reconnect", lease=last.id)
            limit = last.idle_timeout_seconds if ended is SeatEndReason.IDLE else last.max_session_seconds
            raise SeatEndedByLimit(
                f"the seat of {app_id!r} ended ({ended}); start it again from the workspace",
                key=f"seat_ended_{ended}",
                minutes=round(limit / 60),
            )
    return launch(db, session, app_id, now, seats)


def _take_seat(
    db: Session, session: HomeSession, app: X11App, effective: EffectivePolicy, now: datetime, seats: SeatSource
) -> SeatLease:
    lease_id = uuid.uuid4().hex
    try:
        seat_id, rfb_address = seats.assign(app, effective.display, holder=lease_id, label=session.login)
    except NoSeatFree as error:
        _refused(db, session, app.id, str(error))
        raise
    lease = _new_lease(db, session, app, effective, now, seats.node, lease_id, seat_id, rfb_address)
    nudge_after_commit(db, SEAT_ASSIGNED, session.id)
    return lease


def _launch_guacamole(
    db: Session,
    session: HomeSession,
    app: GuacamoleApp,
    effective: EffectivePolicy,
    lease: SeatLease | None,
    now: datetime,
    seats: SeatSource,
) -> LaunchedSeat:
    """Mint a guacamole-lite launch with policy's parameters; a live lease of the app is reused (reconnect).

    The launch is minted before the lease is written, so a refusal leaves no lease behind; then it is bound
    to the lease and session, which its redemption and its live connection depend on (`launch_store`).
    """
    lease_id = lease.id if lease is not None else uuid.uuid4().hex
    seat_id = lease.seat_id if lease is not None else f"guac-{lease_id}"
    try:
        gate = seats.guacamole_launch_gate(db, now)
        parameters = compile_guacamole(
            effective,
            app,
            user=session.login,
            learned_fingerprint=trusted_fingerprint(db, app, session.login, now, seats.rdp_certificate),
            recording_tag=secrets.token_hex(4),
        )
        if (password := seats.guacamole_password(app.id)) is not None:
            parameters["password"] = password
        refusal = _recording_refusal(db, seats, parameters)
        issued = gate.issue_seat_launch(user=session.login, seat=seat_id, protocol=app.protocol, parameters=parameters)
    except (GuacamoleUnavailable, LaunchParametersRefused, PolicyError) as error:
        message = error.message if isinstance(error, GuacamoleUnavailable) else str(error)
        _refused(db, session, app.id, message)
        raise GuacamoleUnavailable(f"{app.title} cannot be opened now: {message}") from None
    if lease is None:
        lease = _new_lease(db, session, app, effective, now, seats.node, lease_id, seat_id, None)
    bind_launch(db, issued.launch_id, lease)
    if "recording-name" in parameters:
        new_recording(
            db, lease, call_event_id=answered_call(db, session.id), file_name=parameters["recording-name"], now=now
        )
    elif refusal is not None:
        refuse_recording(db, lease, refusal, now, seats.recording_storage_alarm)
    return LaunchedSeat(lease, issued.token)


def _recording_refusal(db: Session, seats: SeatSource, parameters: dict[str, str]) -> str | None:
    """Why policy's recording cannot start (no room, not set up), having taken guacd's recording parameters out;
    None when it may (or policy records nothing). The seat opens either way: the refusal is audited and alerted."""
    if "recording-name" not in parameters:
        return None
    settings = seats.recording_settings()
    refusal = "recording is not set up on this node" if settings is None else None
    if settings is not None:
        refusal = storage_refusal(db, RecordingFiles.of(settings), settings)
    if refusal is not None:
        for name in ("recording-path", "recording-name", "create-recording-path"):
            parameters.pop(name, None)
    return refusal


def _refused(
    db: Session, session: HomeSession, app_id: str, reason: str, *, action: str = "seat.launch", **detail: str
) -> None:
    record(
        db,
        actor=session.login,
        source=session.source_ip,
        action=action,
        target=app_id,
        outcome="refused",
        detail={"reason": reason, "session": session.id, "person": session.person_id, **detail},
    )


def _new_lease(
    db: Session,
    session: HomeSession,
    app: X11App | GuacamoleApp,
    effective: EffectivePolicy,
    now: datetime,
    node: str,
    lease_id: str,
    seat_id: str,
    rfb_address: str | None,
) -> SeatLease:
    lease = SeatLease(
        id=lease_id,
        session_id=session.id,
        person_id=session.person_id,
        login=session.login,
        app_id=app.id,
        backend=app.backend,
        node=node,
        seat_id=seat_id,
        rfb_address=rfb_address,
        state=SeatLeaseState.ASSIGNED,
        idle_timeout_seconds=int(effective.idle_timeout.total_seconds()),
        max_session_seconds=int(effective.max_session.total_seconds()),
        started_at=now,
        last_activity_at=now,
    )
    db.add(lease)
    db.flush()
    record(
        db,
        actor=session.login,
        source=session.source_ip,
        action="seat.launch",
        target=app.id,
        outcome="success",
        detail={
            "lease": lease.id,
            "seat": seat_id,
            "node": node,
            "session": session.id,
            "backend": app.backend,
            "person": session.person_id,
        },
    )
    return lease


def live_lease(db: Session, session_id: str, app_id: str) -> SeatLease | None:
    return db.exec(
        select(SeatLease).where(
            SeatLease.session_id == session_id, SeatLease.app_id == app_id, col(SeatLease.state).in_(LIVE)
        )
    ).first()


def live_leases(db: Session, node: str | None = None) -> list[SeatLease]:
    query = select(SeatLease).where(col(SeatLease.state).in_(LIVE)).order_by(col(SeatLease.started_at))
    if node is not None:
        query = query.where(SeatLease.node == node)
    return list(db.exec(query).all())


def live_leases_of(db: Session, session_id: str, node: str) -> list[SeatLease]:
    """One session's live leases on one node (the screen wall asks per seat, many times a minute)."""
    query = select(SeatLease).where(
        SeatLease.session_id == session_id, SeatLease.node == node, col(SeatLease.state).in_(LIVE)
    )
    return list(db.exec(query).all())


def sessions_with_live_seats(db: Session, session_ids: Collection[str]) -> set[str]:
    """Of ``session_ids``, those still holding a seat lease that has not ended (an ending session waits for it)."""
    query = select(SeatLease.session_id).where(
        col(SeatLease.session_id).in_(list(session_ids)), col(SeatLease.state).in_(LIVE)
    )
    return set(db.exec(query).all())


def end_seat(
    db: Session, lease: SeatLease, reason: SeatEndReason, now: datetime, *, detail: dict[str, object] | None = None
) -> None:
    """Mark the lease ended and audit it; after the commit the broker stops and wipes the seat."""
    if lease.state is SeatLeaseState.ENDED:
        return
    lease.state, lease.end_reason, lease.ended_at = SeatLeaseState.ENDED, reason, now
    db.add(lease)
    db.flush()
    record(
        db,
        actor="system",
        action="seat.end",
        target=lease.login,
        outcome=reason.value,
        detail={
            "lease": lease.id,
            "seat": lease.seat_id,
            "app": lease.app_id,
            "session": lease.session_id,
            "person": lease.person_id,
            **(detail or {}),
        },
    )
    nudge_after_commit(db, SEAT_ENDED, (lease.node, lease.seat_id))


def end_seats_of_session(db: Session, session_id: str, now: datetime) -> int:
    leases = db.exec(select(SeatLease).where(SeatLease.session_id == session_id, col(SeatLease.state).in_(LIVE))).all()
    for lease in leases:
        end_seat(db, lease, SeatEndReason.SESSION_ENDED, now)
    return len(leases)


def mark_connected(db: Session, lease: SeatLease, now: datetime) -> None:
    lease.state, lease.last_activity_at = SeatLeaseState.CONNECTED, now
    db.add(lease)
    db.flush()


def mark_disconnected(db: Session, lease_id: str, now: datetime) -> None:
    """The browser left: the seat waits the grace window for a reconnect of the same session."""
    lease = db.get(SeatLease, lease_id)
    if lease is not None and lease.state is SeatLeaseState.CONNECTED:
        lease.state, lease.last_activity_at = SeatLeaseState.ASSIGNED, now
        db.add(lease)
        db.flush()


INPUT_STEP_SECONDS = 10
"""The display's last input is written to the lease only once it moved this far: a typing agent costs one UPDATE per
this many seconds, and the wall (which rounds idle starts to 10 s) still resets its idle counter."""


def note_input(db: Session, lease: SeatLease, now: datetime, idle_seconds: float | None) -> None:
    """Record the display's last keyboard or pointer input as the connected lease's activity, so the supervisors' wall
    shows the agent idle since they last typed, not since they connected."""
    if idle_seconds is None or lease.state is not SeatLeaseState.CONNECTED:
        return
    last_input = now - timedelta(seconds=idle_seconds)
    if last_input - as_utc(lease.last_activity_at) >= timedelta(seconds=INPUT_STEP_SECONDS):
        lease.last_activity_at = last_input
        db.add(lease)
        db.flush()


def browser_idle_seconds(lease: SeatLease, now: datetime) -> float:
    """Seconds since the agent's last keyboard or pointer input on a Guacamole seat, as guacamole-lite reported it
    (`launch_store.report_input`); since the hand-over when it reported none, so a reconnect restarts nothing."""
    since = lease.last_input_at if lease.last_input_at is not None else lease.started_at
    return (now - as_utc(since)).total_seconds()


def overdue(lease: SeatLease, now: datetime, idle_seconds: float | None, grace: timedelta) -> SeatEndReason | None:
    """Why a live lease must end now, or None.

    Idle time is the display's own (no keyboard or pointer input, `idle_seconds`; a Guacamole seat's from
    guacamole-lite's reports, `browser_idle_seconds`), but never more than
    the time since the seat was handed over: a pooled seat's display has been idle since it was warmed, which says
    nothing about the person who just got it. Not since the last connection: a browser that reconnects (a flapping
    home network, a page left open) types nothing, and an unattended seat must still end at the policy's timeout.
    """
    held = (now - as_utc(lease.started_at)).total_seconds()
    if held >= lease.max_session_seconds:
        return SeatEndReason.MAX_LENGTH
    if idle_seconds is not None and min(idle_seconds, held) >= lease.idle_timeout_seconds:
        return SeatEndReason.IDLE
    since_activity = (now - as_utc(lease.last_activity_at)).total_seconds()
    if lease.state is SeatLeaseState.ASSIGNED and since_activity > grace.total_seconds():
        return SeatEndReason.ABANDONED
    return None
