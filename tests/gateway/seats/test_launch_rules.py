"""Launch, tokens and seat limits against the database (SQLite and PostgreSQL), with an in-process seat source.

The real pool and real seats are exercised in test_pool.py and test_seat_in_browser.py; here the rules are.
"""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from desktop_broker.guacamole.gate import LaunchGate
from desktop_broker.pool import SeatPool
from desktop_broker.x11 import SeatSpec
from gateway import events
from gateway.audit.models import AuditEvent
from gateway.seats import service
from gateway.seats.broker import SeatBroker
from gateway.seats.errors import AppNotPublished, LaunchRefused, NoSeatFree
from gateway.seats.models import SeatEndReason, SeatLease, SeatLeaseState
from gateway.seats.settings import SeatSettings
from gateway.seats.tokens import spend
from gateway.sessions.models import HomeSession, SessionState
from gateway.sessions.service import open_session
from gateway.supervision.alerts import RecordingStorageAlarm
from policy import DisplayRules, X11App

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
APP = "customer-console"


class InProcessSeats:
    """Hands out seat ids without processes; `full` makes it refuse like a pool at its cap."""

    node = "node-a"
    token_lifetime = timedelta(seconds=30)

    def __init__(self) -> None:
        self.held: dict[str, tuple[str, str, DisplayRules]] = {}
        self.full = False

    def runs(self, lease: SeatLease) -> bool:
        return lease.seat_id in self.held

    def assign(self, app: X11App, rules: DisplayRules, *, holder: str, label: str) -> tuple[str, str]:
        if self.full:
            raise NoSeatFree("no seat free on this node: all 1 seats are in use")
        seat_id = f"seat-{len(self.held) + 1}"
        self.held[seat_id] = (holder, label, rules)
        return seat_id, "127.0.0.1:5901"


def _session(db: Session, login: str, groups: str = '["SOHO-Agents"]') -> HomeSession:
    session = HomeSession(
        id="",
        token_sha256="",
        csrf_token="",
        state=SessionState.ACTIVE,
        person_id=f"test:{login}",
        login=login,
        user_dn=f"cn={login}",
        roles="agent",
        groups=groups,
        policy_groups=groups,
        created_at=NOW,
        last_seen_at=NOW,
        last_checked_at=NOW,
        idle_timeout_seconds=900,
        expires_at=NOW + timedelta(hours=8),
    )
    open_session(db, session)
    return session


def _audit(db: Session, action: str) -> list[AuditEvent]:
    return list(db.exec(select(AuditEvent).where(AuditEvent.action == action).order_by(col(AuditEvent.seq))))


@pytest.fixture
def seats() -> InProcessSeats:
    return InProcessSeats()


def test_launch_writes_a_lease_held_by_the_person_and_labels_the_seat_with_the_agent(
    db: Session, seats: InProcessSeats
) -> None:
    session = _session(db, "agent1")
    launched = service.launch(db, session, APP, NOW, seats)
    lease = launched.lease
    assert (lease.login, lease.app_id, lease.state, lease.node) == ("agent1", APP, SeatLeaseState.ASSIGNED, "node-a")
    assert lease.person_id == session.person_id
    assert (lease.idle_timeout_seconds, lease.max_session_seconds) == (900, 8 * 3600)
    assert seats.held[lease.seat_id][:2] == (lease.id, "agent1")
    assert seats.held[lease.seat_id][2] == DisplayRules()  # the default policy allows nothing to cross
    launched_row = _audit(db, "seat.launch")[-1]
    assert launched_row.outcome == "success" and json.loads(launched_row.detail)["person"] == session.person_id


def test_an_app_not_published_to_the_person_is_refused_and_audited(db: Session, seats: InProcessSeats) -> None:
    session = _session(db, "outsider", groups="[]")
    with pytest.raises(AppNotPublished):
        service.launch(db, session, APP, NOW, seats)
    assert (_audit(db, "seat.launch")[-1].outcome, seats.held) == ("refused", {})


def test_no_seat_free_is_refused_with_the_reason_and_audited(db: Session, seats: InProcessSeats) -> None:
    seats.full = True
    with pytest.raises(NoSeatFree, match="no seat free"):
        service.launch(db, _session(db, "agent1"), APP, NOW, seats)
    assert "no seat free" in _audit(db, "seat.launch")[-1].detail


def test_a_token_opens_the_seat_once_and_a_replay_is_refused_and_audited(db: Session, seats: InProcessSeats) -> None:
    session = _session(db, "agent1")
    launched = service.launch(db, session, APP, NOW, seats)
    assert spend(db, launched.token, session, NOW + timedelta(seconds=1), "198.51.100.7").id == launched.lease.id
    with pytest.raises(LaunchRefused, match="already used"):
        spend(db, launched.token, session, NOW + timedelta(seconds=2), "198.51.100.7")
    assert [e.outcome for e in _audit(db, "seat.connect")] == ["success", "refused"]


@pytest.mark.parametrize(
    "case, reason",
    [
        ("other_person", "another person"),
        ("other_session_same_person", "another person or session"),
        ("expired", "expired"),
        ("altered", "unknown or altered"),
        ("anonymous", "another person"),
    ],
)
def test_a_token_used_by_anyone_else_late_or_altered_is_refused_and_audited(
    db: Session, seats: InProcessSeats, case: str, reason: str
) -> None:
    session = _session(db, "agent1")
    launched = service.launch(db, session, APP, NOW, seats)
    token, presenter, at = launched.token, session, NOW + timedelta(seconds=1)
    presenter_or_none: HomeSession | None = presenter
    if case == "other_person":
        presenter_or_none = _session(db, "agent2")
    elif case == "other_session_same_person":
        presenter_or_none = _session(db, "agent1")
    elif case == "expired":
        at = NOW + timedelta(seconds=31)
    elif case == "altered":
        token = token[:-1] + ("A" if token[-1] != "A" else "B")
    elif case == "anonymous":
        presenter_or_none = None
    with pytest.raises(LaunchRefused, match=reason):
        spend(db, token, presenter_or_none, at, "203.0.113.9")
    refusal = _audit(db, "seat.connect")[-1]
    assert refusal.outcome == "refused" and reason in refusal.detail
    if case != "altered":  # the attempt burnt the token: the rightful owner must relaunch
        with pytest.raises(LaunchRefused, match="already used"):
            spend(db, launched.token, session, NOW + timedelta(seconds=2), "198.51.100.7")


def test_relaunching_within_the_session_reuses_the_seat(db: Session, seats: InProcessSeats) -> None:
    session = _session(db, "agent1")
    first = service.launch(db, session, APP, NOW, seats)
    again = service.launch(db, session, APP, NOW + timedelta(seconds=60), seats)
    assert again.lease.id == first.lease.id and again.token != first.token and len(seats.held) == 1


def test_a_lease_whose_seat_is_gone_is_ended_and_replaced_on_relaunch(db: Session, seats: InProcessSeats) -> None:
    session = _session(db, "agent1")
    first = service.launch(db, session, APP, NOW, seats)
    seats.held.clear()  # the node restarted
    again = service.launch(db, session, APP, NOW + timedelta(seconds=5), seats)
    assert again.lease.id != first.lease.id
    assert db.get(SeatLease, first.lease.id).end_reason is SeatEndReason.LOST  # type: ignore[union-attr]


def test_ending_a_session_ends_its_seats_and_nudges_the_broker_after_commit(db: Session, seats: InProcessSeats) -> None:
    session = _session(db, "agent1")
    lease = service.launch(db, session, APP, NOW, seats).lease
    db.commit()
    nudged: list[Any] = []

    def listener(_topic: str, payload: Any) -> None:
        nudged.append(payload)

    events.listen(service.SEAT_ENDED, listener)
    try:
        assert service.end_seats_of_session(db, session.id, NOW + timedelta(minutes=1)) == 1
        assert nudged == []  # not before the commit
        db.commit()
    finally:
        events.unlisten(service.SEAT_ENDED, listener)
    assert nudged == [("node-a", lease.seat_id)]
    ended = _audit(db, "seat.end")[-1]
    assert ended.outcome == "session_ended" and json.loads(ended.detail)["person"] == session.person_id


def _lease(state: SeatLeaseState = SeatLeaseState.CONNECTED) -> SeatLease:
    return SeatLease(
        id="l",
        session_id="s",
        person_id="test:agent1",
        login="agent1",
        app_id=APP,
        backend="x11",
        node="node-a",
        seat_id="seat-1",
        state=state,
        idle_timeout_seconds=120,
        max_session_seconds=3600,
        started_at=NOW,
        last_activity_at=NOW,
    )


GRACE = timedelta(seconds=60)


def test_maximum_session_length_ends_the_seat() -> None:
    assert service.overdue(_lease(), NOW + timedelta(seconds=3599), 0.0, GRACE) is None
    assert service.overdue(_lease(), NOW + timedelta(seconds=3600), 0.0, GRACE) is SeatEndReason.MAX_LENGTH


def test_idle_time_counts_from_the_display_but_never_from_before_the_launch() -> None:
    later = NOW + timedelta(seconds=200)
    assert service.overdue(_lease(), later, 130.0, GRACE) is SeatEndReason.IDLE
    assert service.overdue(_lease(), later, 10.0, GRACE) is None  # someone typed 10 s ago
    assert service.overdue(_lease(), NOW + timedelta(seconds=30), 5000.0, GRACE) is None  # a long-warm seat


def test_a_reconnect_does_not_restart_the_idle_clock() -> None:
    """A browser reconnecting (a flapping home network) sends no input: the display's idle time still counts."""
    later = NOW + timedelta(seconds=200)
    reconnected = _lease()
    reconnected.last_activity_at = later - timedelta(seconds=5)  # what mark_connected wrote 5 s ago
    assert service.overdue(reconnected, later, 130.0, GRACE) is SeatEndReason.IDLE


def test_a_seat_nobody_reconnects_to_within_the_grace_window_ends() -> None:
    assert service.overdue(_lease(SeatLeaseState.ASSIGNED), NOW + timedelta(seconds=59), None, GRACE) is None
    late = NOW + timedelta(seconds=61)
    assert service.overdue(_lease(SeatLeaseState.ASSIGNED), late, None, GRACE) is SeatEndReason.ABANDONED
    assert service.overdue(_lease(SeatLeaseState.CONNECTED), late, None, GRACE) is None


class SeatProcessStandIn:
    """What the pool asks of a running seat, without processes: the race below is the broker's, not X11's."""

    rfb_address = "127.0.0.1:5901"

    def __init__(self, _spec: SeatSpec) -> None:
        self.stopped = False
        self.label = ""

    def show_watermark(self, label: str) -> None:
        self.label = label

    def failure(self) -> str | None:
        return None

    def stop(self) -> None:
        self.stopped = True


class ReconcileBeforeCommit:
    """The real broker as `launch`'s seat source, running a reconcile pass right after it hands the seat
    over: the moment the 3 s schedule can hit, with the launch's lease not yet committed."""

    def __init__(self, broker: SeatBroker) -> None:
        self.broker = broker
        self.node = broker.node
        self.token_lifetime = broker.token_lifetime

    def runs(self, lease: SeatLease) -> bool:
        return self.broker.runs(lease)

    def assign(self, app: X11App, rules: DisplayRules, *, holder: str, label: str) -> tuple[str, str]:
        assigned = self.broker.assign(app, rules, holder=holder, label=label)
        self.broker.reconcile()
        return assigned

    def guacamole_launch_gate(self, db: Session, now: datetime) -> LaunchGate:
        return self.broker.guacamole_launch_gate(db, now)


def test_a_reconcile_pass_between_assignment_and_commit_leaves_the_new_seat_alone(engine: Engine, db: Session) -> None:
    clock = [NOW]
    pool = SeatPool(start=SeatProcessStandIn, node_cap=3, warm_per_kind=0, now=lambda: clock[0])  # type: ignore[arg-type]
    broker = SeatBroker(
        engine, SeatSettings(call_state_root=None), "node-a", lambda: clock[0], pool, RecordingStorageAlarm()
    )
    try:
        session = _session(db, "agent1")
        db.commit()
        launched = service.launch(db, session, APP, NOW, ReconcileBeforeCommit(broker))
        db.commit()
        seat = pool.get(launched.lease.seat_id)
        assert seat is not None and not seat.process.stopped and seat.holder == launched.lease.id

        orphan = pool.assign(seat.kind, "lease-of-a-rolled-back-launch", "agent2")
        clock[0] += broker.token_lifetime - timedelta(seconds=1)
        broker.reconcile()
        assert pool.get(orphan.seat_id) is orphan  # its launch might still commit
        clock[0] += timedelta(seconds=2)
        broker.reconcile()
        assert pool.get(orphan.seat_id) is None and orphan.process.stopped  # it never will: recycled
        assert pool.get(seat.seat_id) is seat and not seat.process.stopped
    finally:
        broker.stop()
