"""A supervisor's Guacamole join at the service level, on SQLite and PostgreSQL: offered for a connected Guacamole
seat, bound to its watch, alive only while that watch may go on, and ended with the join's socket."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

import pytest
from sqlmodel import Session, select

from desktop_broker.guacamole.gate import LaunchGate
from desktop_broker.guacamole.token import derive_token_key
from gateway.policies.service import import_policy
from gateway.seats.launch_store import DbLaunchStore
from gateway.seats.models import LaunchToken, SeatLease, SeatLeaseState
from gateway.sessions.models import HomeSession, SessionState
from gateway.supervision.models import ScreenWatch
from gateway.supervision.monitoring import ScreenViewer, end_watch, start_watch
from gateway.supervision.viewing import offer_view, view_may_go_on, watch_of_view_launch
from tests.gateway.supervision.conftest import add_session

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
POLICY = """
version: 1
apps:
  - {id: billing, title: Billing, backend: guacamole, protocol: rdp, host: rds.example}
roles:
  supervisor: {require_client_certificate: false}
groups:
  SOHO-Agents: {roles: [agent], apps: [billing]}
  SOHO-Supervisors: {roles: [supervisor]}
"""


@dataclass
class GuacamoleSeats:
    """The broker as `offer_view` sees it for a Guacamole seat: the real gate over the test's database."""

    now: list[datetime]
    node: str = "node-1"
    token_lifetime: timedelta = timedelta(seconds=30)

    def runs(self, lease: SeatLease) -> bool:
        return False  # no X11 seat here: only the Guacamole lease can be watched

    def guacamole_launch_gate(self, db: Session, now: datetime) -> LaunchGate:
        key = derive_token_key(b"a broker secret of at least 32 bytes")
        return LaunchGate(key, DbLaunchStore(db, lambda: self.now[0]), lambda: now)


@dataclass
class Scene:
    agent: HomeSession
    supervisor: HomeSession
    lease: SeatLease
    now: list[datetime]
    viewer: ScreenViewer


@pytest.fixture
def scene(db: Session) -> Iterator[Scene]:
    import_policy(db, POLICY, actor="test", source="", now=T0)
    agent = add_session(db, "agent1", created_at=T0, groups=["SOHO-Agents"])
    supervisor = add_session(db, "sup1", created_at=T0, roles="supervisor", groups=["SOHO-Supervisors"])
    lease = SeatLease(
        id="l" * 32,
        session_id=agent.id,
        person_id=agent.person_id,
        login="agent1",
        app_id="billing",
        backend="guacamole",
        node="node-1",
        seat_id="guac-1",
        connection_id="$8d3c6e0a-1f7b-4d8e-9a51-3c0f6d2b7e11",
        state=SeatLeaseState.CONNECTED,
        idle_timeout_seconds=900,
        max_session_seconds=28800,
        started_at=T0,
        last_activity_at=T0,
    )
    db.add(lease)
    db.flush()
    now = [T0 + timedelta(minutes=1)]

    def viewer(db: Session, agent: HomeSession, supervisor: str) -> str:
        return offer_view(db, agent, supervisor, GuacamoleSeats(now), now[0])  # type: ignore[arg-type]

    yield Scene(agent, supervisor, lease, now, viewer)


def _watch(db: Session, scene: Scene) -> tuple[int, LaunchToken]:
    watch, url = start_watch(db, scene.supervisor, scene.agent.id, viewer=scene.viewer, now=scene.now[0], source="test")
    assert watch.id is not None and url.startswith("/seats/view?token=")
    token = unquote(url.split("=", 1)[1])
    (row,) = [r for r in db.exec(select(LaunchToken).where(LaunchToken.mode == "view")).all() if r.lease_id]
    assert row.backend == "guacamole" and (row.lease_id, row.session_id) == (scene.lease.id, scene.supervisor.id)
    assert token  # the join token itself goes to the watch page, once
    return watch.id, row


def test_a_connected_guacamole_seat_is_offered_as_a_join_alive_while_its_watch_is_open(
    db: Session, scene: Scene
) -> None:
    watch_id, row = _watch(db, scene)
    assert view_may_go_on(db, row.id, scene.now[0])
    watching = watch_of_view_launch(db, row.id)
    assert watching is not None and watching[0].id == watch_id
    end_watch(db, watch_id, scene.supervisor, now=scene.now[0], source="test")
    assert not view_may_go_on(db, row.id, scene.now[0]) and watch_of_view_launch(db, row.id) is None


@pytest.mark.parametrize(
    "change", ["supervisor signed out", "agent signed out", "seat ended", "role taken", "agent's team mapped away"]
)
def test_a_join_dies_with_anything_its_watch_depends_on(db: Session, scene: Scene, change: str) -> None:
    _, row = _watch(db, scene)
    if change == "supervisor signed out":
        scene.supervisor.state = SessionState.ENDED
    elif change == "agent signed out":
        scene.agent.state = SessionState.ENDED
    elif change == "seat ended":
        scene.lease.state = SeatLeaseState.ENDED
    elif change == "agent's team mapped away":
        another_team = POLICY + "team_scope:\n  teams:\n    Team-South: [SOHO-Supervisors]\n"
        import_policy(db, another_team, actor="test", source="", now=scene.now[0])
    else:
        scene.supervisor.roles = "agent"
    db.add_all([scene.supervisor, scene.agent, scene.lease])
    db.flush()
    assert not view_may_go_on(db, row.id, scene.now[0])
    assert db.exec(select(ScreenWatch)).first() is not None
