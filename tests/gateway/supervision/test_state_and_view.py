"""Work states and the joined seat view, on SQLite and PostgreSQL."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from gateway.errors import Conflict
from gateway.seats.models import SeatLease, SeatLeaseState
from gateway.sessions.models import EndReason
from gateway.sessions.service import end_session
from gateway.supervision.errors import UnknownWorkState
from gateway.supervision.models import WorkState, WorkStatus
from gateway.supervision.settings import SupervisionSettings
from gateway.supervision.state import close_ended_stretches, parse_status, set_work_state
from gateway.supervision.view import seat_view
from gateway.voice.models import CallLeg, LegState
from gateway.vpn.models import LeaseState, TunnelLease
from tests.gateway.supervision.conftest import add_session

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


def test_each_state_change_closes_the_previous_stretch_and_keeps_history(db: Session) -> None:
    agent = add_session(db, "agent1", created_at=T0)
    set_work_state(db, agent, WorkStatus.READY, "", source="portal", now=T0 + timedelta(minutes=1))
    set_work_state(db, agent, WorkStatus.READY, "", source="portal", now=T0 + timedelta(minutes=2))
    set_work_state(db, agent, WorkStatus.BREAK, "lunch", source="platform", now=T0 + timedelta(minutes=5))
    rows = db.exec(select(WorkState).order_by(WorkState.id)).all()  # type: ignore[arg-type]
    assert [(r.status, r.reason, r.source) for r in rows] == [
        (WorkStatus.READY, "", "portal"),
        (WorkStatus.BREAK, "lunch", "platform"),
    ]
    assert rows[0].ended_at is not None and rows[0].ended_at.replace(tzinfo=UTC) == T0 + timedelta(minutes=5)
    assert rows[1].ended_at is None


def test_a_break_needs_a_known_reason_and_unknown_states_are_refused() -> None:
    assert parse_status("break", "lunch") == (WorkStatus.BREAK, "lunch")
    assert parse_status("ready", "lunch") == (WorkStatus.READY, "")
    with pytest.raises(UnknownWorkState, match="needs a reason"):
        parse_status("break", "")
    with pytest.raises(UnknownWorkState, match="unknown work state"):
        parse_status("sleeping", "")


def test_an_ended_session_cannot_take_a_state_and_its_open_stretch_is_closed(db: Session) -> None:
    agent = add_session(db, "agent1", created_at=T0)
    set_work_state(db, agent, WorkStatus.READY, "", source="portal", now=T0)
    end_session(db, agent, EndReason.LOGOUT, actor="agent1", now=T0 + timedelta(hours=1))
    with pytest.raises(Conflict):
        set_work_state(db, agent, WorkStatus.ON_CALL, "", source="portal", now=T0 + timedelta(hours=2))
    assert close_ended_stretches(db, T0 + timedelta(hours=3)) == 1
    stretch = db.exec(select(WorkState)).one()
    assert stretch.ended_at is not None and stretch.ended_at.replace(tzinfo=UTC) == T0 + timedelta(hours=1)


def test_seat_view_joins_session_tunnel_voice_seat_and_state(db: Session) -> None:
    settings = SupervisionSettings(office_networks=["10.20.0.0/16"], team_groups=["Team-North"], link_down_seconds=60)
    now = T0 + timedelta(minutes=30)
    home = add_session(db, "agent1", created_at=T0)
    office = add_session(db, "agent2", created_at=T0, source_ip="10.20.3.4", groups=["SOHO-Agents", "Team-South"])
    add_session(db, "sup1", created_at=T0, roles="supervisor")
    set_work_state(db, home, WorkStatus.BREAK, "rest", source="portal", now=T0 + timedelta(minutes=10))
    db.add(
        TunnelLease(
            session_id=home.id,
            person_id=home.person_id,
            login="agent1",
            public_key="k1",
            ipv4="10.99.0.2",
            ipv6="fd00::2",
            state=LeaseState.DESIRED,
            created_at=T0,
            latest_handshake_at=now - timedelta(seconds=20),
        )
    )
    db.add(
        TunnelLease(
            session_id=office.id,
            person_id=office.person_id,
            login="agent2",
            public_key="k2",
            ipv4="10.99.0.3",
            ipv6="fd00::3",
            state=LeaseState.DESIRED,
            created_at=T0,
            latest_handshake_at=now - timedelta(minutes=5),
        )
    )
    db.add(
        CallLeg(
            id="leg1",
            session_id=home.id,
            person_id=home.person_id,
            login="agent1",
            e164="+8613800000000",
            state=LegState.CONNECTED,
            created_at=T0,
            updated_at=T0,
        )
    )
    db.flush()
    db.add(
        SeatLease(
            id="lease2",
            session_id=office.id,
            person_id=office.person_id,
            login="agent2",
            app_id="crm",
            backend="guacamole",
            node="n2",
            seat_id="seat-9",
            state=SeatLeaseState.CONNECTED,
            idle_timeout_seconds=900,
            max_session_seconds=36000,
            started_at=T0,
            last_activity_at=now - timedelta(seconds=30),
        )
    )
    db.add(
        SeatLease(
            id="lease1",
            session_id=home.id,
            person_id=home.person_id,
            login="agent1",
            app_id="crm",
            backend="x11",
            node="n1",
            seat_id="seat-7",
            state=SeatLeaseState.CONNECTED,
            idle_timeout_seconds=900,
            max_session_seconds=36000,
            started_at=T0,
            last_activity_at=now - timedelta(seconds=125),
        )
    )
    db.flush()
    rows = {row.login: row for row in seat_view(db, now, settings)}
    assert set(rows) == {"agent1", "agent2"}  # supervisors are not seats
    one, two = rows["agent1"], rows["agent2"]
    assert (one.state, one.reason, one.teams, one.on_site) == ("break", "rest", ["Team-North"], False)
    assert (one.link, one.voice, one.seat, one.seat_node) == ("good", "connected", "seat-7", "n1")
    assert two.seat_node == "n2"  # the wall asks the node that runs the seat for its picture
    assert one.break_too_long is True  # 20 minutes > the default 15
    assert one.idle_since is not None and datetime.fromisoformat(one.idle_since) <= now - timedelta(seconds=125)
    assert (two.state, two.teams, two.on_site, two.link, two.voice, two.seat) == (
        "offline",
        [],
        True,
        "down",
        None,
        "seat-9",  # from the seats domain's live lease
    )
    assert two.idle_since == (now - timedelta(seconds=30)).isoformat(timespec="seconds")
