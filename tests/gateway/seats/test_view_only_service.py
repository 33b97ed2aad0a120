"""View tokens at the service level, on SQLite and PostgreSQL: each opens only its own open watch, once, in time."""

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from gateway.audit.models import AuditEvent
from gateway.policies.service import import_policy
from gateway.seats.errors import LaunchRefused
from gateway.seats.models import SeatLease, SeatLeaseState
from gateway.sessions.models import HomeSession
from gateway.supervision.monitoring import ScreenViewer, end_watch, start_watch
from gateway.supervision.viewing import end_view, offer_view, spend_view_token, still_watching
from tests.gateway.supervision.conftest import add_session

POLICY = Path(__file__).with_name("two_apps_policy.yaml").read_text()
T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


@dataclass
class FakeSeats:
    """The broker as `offer_view` sees it: this node runs every lease."""

    node: str = "node-1"
    token_lifetime: timedelta = timedelta(seconds=30)

    def runs(self, lease: SeatLease) -> bool:
        return True


@dataclass
class Scene:
    agent: HomeSession
    supervisor: HomeSession
    now: list[datetime]
    viewer: ScreenViewer


@pytest.fixture
def scene(db: Session) -> Iterator[Scene]:
    """agent1 on a seat, sup1 signed in, and the seats' viewer with a clock the test moves."""
    import_policy(db, POLICY, actor="test", source="", now=T0)
    agent = add_session(db, "agent1", created_at=T0, groups=["SOHO-Agents"])
    supervisor = add_session(db, "sup1", created_at=T0, roles="supervisor", groups=["SOHO-Supervisors"])
    lease_id = uuid.uuid4().hex
    db.add(
        SeatLease(
            id=lease_id,
            session_id=agent.id,
            person_id=agent.person_id,
            login="agent1",
            app_id="customer-console",
            backend="x11",
            node="node-1",
            seat_id="seat-1",
            state=SeatLeaseState.CONNECTED,
            idle_timeout_seconds=900,
            max_session_seconds=28800,
            started_at=T0,
            last_activity_at=T0,
        )
    )
    db.flush()
    now = [T0 + timedelta(minutes=1)]

    def viewer(db: Session, agent: HomeSession, supervisor: str) -> str:
        return offer_view(db, agent, supervisor, FakeSeats(), now[0])

    yield Scene(agent, supervisor, now, viewer)


def _watch(db: Session, scene: Scene) -> tuple[int, str]:
    watch, url = start_watch(db, scene.supervisor, scene.agent.id, viewer=scene.viewer, now=scene.now[0], source="test")
    assert watch.id is not None and url.startswith("/seats/view?token=")
    return watch.id, url.split("=", 1)[1]


def test_each_view_token_opens_the_watch_it_was_minted_for_and_closing_ends_only_that_one(
    db: Session, scene: Scene
) -> None:
    first, first_token = _watch(db, scene)
    scene.now[0] += timedelta(seconds=2)
    second, second_token = _watch(db, scene)
    grant_first = spend_view_token(db, first_token, scene.supervisor, scene.now[0], "test")
    grant_second = spend_view_token(db, second_token, scene.supervisor, scene.now[0], "test")
    assert (grant_first.watch_id, grant_second.watch_id) == (first, second)
    end_view(db, grant_first, scene.now[0], "test")
    assert not still_watching(db, grant_first, scene.now[0]) and still_watching(db, grant_second, scene.now[0])
    ends = db.exec(select(AuditEvent).where(AuditEvent.action == "supervision.watch.end")).all()
    assert [json.loads(e.detail) for e in ends] == [{"watch": first, "session": scene.agent.id}]


def test_a_view_token_is_refused_after_30_seconds_or_once_its_watch_was_stopped(db: Session, scene: Scene) -> None:
    _, late = _watch(db, scene)
    with pytest.raises(LaunchRefused, match="expired"):
        spend_view_token(db, late, scene.supervisor, scene.now[0] + timedelta(seconds=31), "test")
    stopped, token = _watch(db, scene)
    end_watch(db, stopped, scene.supervisor, now=scene.now[0], source="test")
    with pytest.raises(LaunchRefused, match="no open watch"):
        spend_view_token(db, token, scene.supervisor, scene.now[0], "test")
    refusals = db.exec(
        select(AuditEvent).where(AuditEvent.action == "seat.connect").order_by(col(AuditEvent.seq))
    ).all()
    assert [(e.actor, e.outcome) for e in refusals] == [("sup1", "refused"), ("sup1", "refused")]


def test_a_running_watch_stops_when_the_team_mapping_no_longer_gives_the_agent_to_the_supervisor(
    db: Session, scene: Scene
) -> None:
    _, token = _watch(db, scene)
    grant = spend_view_token(db, token, scene.supervisor, scene.now[0], "test")
    assert still_watching(db, grant, scene.now[0])
    another_team = POLICY + "team_scope:\n  teams:\n    Team-South: [SOHO-Supervisors]\n"
    import_policy(db, another_team, actor="test", source="", now=scene.now[0])
    assert not still_watching(db, grant, scene.now[0])
