"""Gateway nodes as real processes on one PostgreSQL: a node killed with its whole process tree is declared dead by
the survivor, which ends everything it owned within the dead time plus 5 s; a second node on SQLite will not start."""

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from gateway.audit.models import AuditEvent
from gateway.audit.service import verify_chain
from gateway.db import make_engine, session_scope
from gateway.nodes.models import GatewayNode, NodeState
from gateway.sessions.models import EndReason, HomeSession, SessionState
from gateway.vpn.leases import lease_for_session
from gateway.vpn.settings import VpnSettings
from tests.gateway.nodes.cluster import cluster
from tests.gateway.vpn.agents import agent_session
from tests.support.sqlite import copy_sqlite
from tests.vpn.keys import key_pair

HEARTBEAT, DEAD_AFTER = 0.5, 3.0


def _own_tunnel(db: Session, login: str, node: str) -> None:
    """A live session of ``login`` whose tunnel ``node`` terminates, as that node's lease wrote it. (A seat lease
    written here would be ended by the node's broker at once as ``seat_lost``: no seat runs behind it. Seats of a
    dead node are proved in test_node_death.py.)"""
    now = datetime.now(UTC)
    session, _ = agent_session(db, login, now, wireguard_key=key_pair()[1])
    session.node = node
    assert lease_for_session(db, session, now, VpnSettings(), node) is not None
    db.flush()


def _states(engine: Engine) -> dict[str, tuple[SessionState, EndReason | None]]:
    with Session(engine) as db:
        return {s.login: (s.state, s.end_reason) for s in db.exec(select(HomeSession))}


@pytest.mark.postgres
@pytest.mark.e2e
def test_killing_a_node_with_its_process_tree_ends_what_it_owned_on_the_survivor_in_time(
    pg_url: str, pg_engine: Engine, tmp_path: Path
) -> None:
    with cluster(pg_url, tmp_path, HEARTBEAT, DEAD_AFTER) as nodes:
        nodes.start("a")
        nodes.start("b")
        with session_scope(pg_engine) as db:
            for login, node in (("li.na", "a"), ("wang.fang", "a"), ("zhao.lei", "b")):
                _own_tunnel(db, login, node)
        with Session(pg_engine) as db:
            assert {n.name: n.state for n in db.exec(select(GatewayNode))} == {"a": NodeState.LIVE, "b": NodeState.LIVE}
        time.sleep(DEAD_AFTER + 1)  # the positive control: two beating nodes declare nobody dead
        assert _states(pg_engine)["li.na"] == (SessionState.ACTIVE, None)

        killed_at = time.monotonic()
        nodes.nodes["a"].kill_whole_tree()
        deadline = killed_at + DEAD_AFTER + 5
        while time.monotonic() < deadline and _states(pg_engine)["li.na"][0] is not SessionState.ENDED:
            time.sleep(0.05)
        ended_after = time.monotonic() - killed_at

        states = _states(pg_engine)
        assert states["li.na"] == states["wang.fang"] == (SessionState.ENDED, EndReason.NODE_LOST), ended_after
        assert states["zhao.lei"] == (SessionState.ACTIVE, None)
        assert DEAD_AFTER - 1 < ended_after < DEAD_AFTER + 5
        with Session(pg_engine) as db:
            node_a = db.get(GatewayNode, "a")
            assert node_a is not None and (node_a.state, node_a.declared_dead_by) == (NodeState.DEAD, "b")
            ends = db.exec(select(AuditEvent).where(AuditEvent.action == "session.end")).all()
            assert sorted((e.actor, e.target, e.outcome) for e in ends) == [
                ("node:b", "li.na", "node_lost"),
                ("node:b", "wang.fang", "node_lost"),
            ]
            lost = db.exec(select(AuditEvent).where(AuditEvent.action == "node.lost")).all()
            assert [(e.actor, e.target) for e in lost] == [("node:b", "a")]
            assert verify_chain(db).first_bad_seq is None
        assert nodes.nodes["b"].process.poll() is None


@pytest.mark.e2e
def test_a_second_node_on_one_sqlite_file_refuses_to_start_and_says_why(sqlite_template: Path, tmp_path: Path) -> None:
    url = copy_sqlite(sqlite_template, tmp_path / "sohogw.db")
    with cluster(url, tmp_path, HEARTBEAT, DEAD_AFTER) as nodes:
        nodes.start("a")
        with pytest.raises(RuntimeError, match="node b did not start"):
            nodes.start("b")
        assert "several nodes need PostgreSQL" in nodes.nodes["b"].log.read_text()
        assert nodes.nodes["a"].process.poll() is None
        engine = make_engine(url)
        with Session(engine) as db:
            refusals = db.exec(select(AuditEvent).where(AuditEvent.outcome == "refused_second_node_on_sqlite")).all()
            assert [e.target for e in refusals] == ["b"]
        engine.dispose()
