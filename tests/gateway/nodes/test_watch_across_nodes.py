"""A supervisor on one node watches a seat another node runs: the link names the owning node (the balancer sends the
page and its websocket there), the token is the same one-time, view-only token, and a seat this node should run
but does not (a restart) is still nothing to watch."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session

from gateway.policies.service import import_policy
from gateway.seats.models import SeatLease, SeatLeaseState
from gateway.sessions.models import HomeSession
from gateway.supervision.errors import NothingToWatch
from gateway.supervision.models import ScreenWatch
from gateway.supervision.monitoring import start_watch
from gateway.supervision.viewing import offer_view, spend_view_token
from tests.gateway.supervision.conftest import add_session

POLICY = (Path(__file__).parents[1] / "seats" / "two_apps_policy.yaml").read_text()
T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


@dataclass
class NodeSeats:
    """A node's broker as ``offer_view`` sees it: it runs none of the leases here."""

    node: str
    token_lifetime: timedelta = timedelta(seconds=30)

    def runs(self, lease: SeatLease) -> bool:
        return False


def _scene(db: Session, seat_node: str) -> tuple[HomeSession, HomeSession]:
    import_policy(db, POLICY, actor="test", source="", now=T0)
    agent = add_session(db, "agent1", created_at=T0, groups=["SOHO-Agents"])
    supervisor = add_session(db, "sup1", created_at=T0, roles="supervisor", groups=["SOHO-Supervisors"])
    db.add(
        SeatLease(
            id=uuid.uuid4().hex,
            session_id=agent.id,
            person_id=agent.person_id,
            login="agent1",
            app_id="customer-console",
            backend="x11",
            node=seat_node,
            seat_id="seat-1",
            state=SeatLeaseState.CONNECTED,
            idle_timeout_seconds=900,
            max_session_seconds=28800,
            started_at=T0,
            last_activity_at=T0,
        )
    )
    db.flush()
    return agent, supervisor


def _watch_from(db: Session, node: NodeSeats, agent: HomeSession, supervisor: HomeSession) -> tuple[ScreenWatch, str]:
    now = T0 + timedelta(minutes=1)

    def viewer(db: Session, agent: HomeSession, supervisor_login: str) -> str:
        return offer_view(db, agent, supervisor_login, node, now)

    return start_watch(db, supervisor, agent.id, viewer=viewer, now=now, source="test")


def test_a_watch_of_a_seat_on_another_node_links_to_that_node_with_a_view_token(db: Session) -> None:
    agent, supervisor = _scene(db, seat_node="gw-b")
    url = _watch_from(db, NodeSeats("gw-a"), agent, supervisor)[1]
    assert url.startswith("/seats/view?token=") and url.endswith("&node=gw-b")
    token = url.split("token=", 1)[1].split("&", 1)[0]
    grant = spend_view_token(db, token, supervisor, T0 + timedelta(minutes=1), "test")  # as gw-b spends it
    assert grant.agent_login == "agent1"


def test_a_seat_this_node_should_run_but_does_not_is_nothing_to_watch(db: Session) -> None:
    agent, supervisor = _scene(db, seat_node="gw-a")
    with pytest.raises(NothingToWatch):
        _watch_from(db, NodeSeats("gw-a"), agent, supervisor)


def test_a_watch_names_the_node_serving_the_watched_session(db: Session) -> None:
    agent, supervisor = _scene(db, seat_node="gw-b")
    agent.node = "gw-b"
    watch = _watch_from(db, NodeSeats("gw-a"), agent, supervisor)[0]
    assert watch.node == "gw-b"
