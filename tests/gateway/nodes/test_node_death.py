"""A node that stops beating is declared dead by exactly one survivor, which ends what it owned, on both databases;
a second node on SQLite is refused."""

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from gateway.audit.models import AuditEvent
from gateway.audit.service import verify_chain
from gateway.db import is_postgres, session_scope
from gateway.nodes import service
from gateway.nodes.errors import SecondNodeOnSqlite
from gateway.nodes.models import GatewayNode, NodeState
from gateway.seats.models import SeatEndReason, SeatLease, SeatLeaseState
from gateway.sessions.models import EndReason, HomeSession, SessionState
from gateway.supervision.models import ScreenWatch
from gateway.voice.models import CallLeg, LegState
from gateway.vpn.leases import lease_for_session
from gateway.vpn.settings import VpnSettings
from tests.gateway.vpn.agents import agent_session
from tests.vpn.keys import key_pair

NOW = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
DEAD_AFTER = timedelta(seconds=15)


def _join(db: Session, name: str, at: datetime) -> GatewayNode:
    return service.join(db, name, at, dead_after=DEAD_AFTER, shared_database=is_postgres(db.get_bind()))


def _seat(db: Session, session: HomeSession, node: str) -> SeatLease:
    lease = SeatLease(
        id=uuid.uuid4().hex,
        session_id=session.id,
        person_id=session.person_id,
        login=session.login,
        app_id="crm",
        backend="x11",
        node=node,
        seat_id=f"{node}-seat-{session.login}",
        state=SeatLeaseState.CONNECTED,
        idle_timeout_seconds=900,
        max_session_seconds=28800,
        started_at=NOW,
        last_activity_at=NOW,
    )
    db.add(lease)
    db.flush()
    return lease


def _owned_world(db: Session) -> dict[str, HomeSession]:
    """On node a: li.na's seat and a watch of it, wang.fang's tunnel. On node b: zhao.lei's seat. No node: chen.jie."""
    sessions = {
        name: agent_session(db, name, NOW, wireguard_key=key_pair()[1])[0]
        for name in ("li.na", "wang.fang", "zhao.lei", "chen.jie")
    }
    _seat(db, sessions["li.na"], "a")
    _seat(db, sessions["zhao.lei"], "b")
    tunnel = lease_for_session(db, sessions["wang.fang"], NOW, VpnSettings())
    assert tunnel is not None
    tunnel.node = "a"
    db.add(tunnel)
    db.add(
        ScreenWatch(supervisor="sup", session_id=sessions["li.na"].id, login="li.na", agent_told=True, started_at=NOW)
    )
    db.flush()
    return sessions


def test_a_silent_node_is_declared_dead_and_everything_it_owned_ends_with_node_lost(engine: Engine) -> None:
    with session_scope(engine) as db:
        if not is_postgres(engine):  # one SQLite node alone: b is the one that lives
            _join(db, "a", NOW - timedelta(minutes=5))
        else:
            _join(db, "a", NOW)
        _join(db, "b", NOW)
        sessions = _owned_world(db)
    with session_scope(engine) as db:
        assert service.declare_dead_nodes(db, "b", NOW + DEAD_AFTER, DEAD_AFTER) == (
            [] if is_postgres(engine) else ["a"]
        )
    if is_postgres(engine):
        with session_scope(engine) as db:  # a beat at NOW is not older than 15 s at NOW + 15 s; at + 16 s it is
            assert service.declare_dead_nodes(db, "b", NOW + DEAD_AFTER + timedelta(seconds=1), DEAD_AFTER) == ["a"]
    with Session(engine) as db:
        # ending (its children closing) or already ended: either way no longer live, with its reason
        ended = {s.login: s for s in db.exec(select(HomeSession)) if s.state is not SessionState.ACTIVE}
        assert {login: s.end_reason for login, s in ended.items()} == {
            "li.na": EndReason.NODE_LOST,
            "wang.fang": EndReason.NODE_LOST,
        }
        seats = {lease.node: lease for lease in db.exec(select(SeatLease))}
        assert (seats["a"].state, seats["a"].end_reason) == (SeatLeaseState.ENDED, SeatEndReason.LOST)
        assert seats["b"].state is SeatLeaseState.CONNECTED
        watch = db.exec(select(ScreenWatch)).one()
        assert watch.ended_at is not None
        node_a = db.get(GatewayNode, "a")
        assert node_a is not None and (node_a.state, node_a.declared_dead_by) == (NodeState.DEAD, "b")
        audit = db.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all()
        ends = [e for e in audit if e.action == "session.end"]
        assert {(e.target, e.outcome, e.actor) for e in ends} == {
            ("li.na", "node_lost", "node:b"),
            ("wang.fang", "node_lost", "node:b"),
        }
        assert [(e.target, e.outcome) for e in audit if e.action == "node.lost"] == [("a", "declared_dead")]
        assert ("li.na", "node_lost") in {(e.target, e.outcome) for e in audit if e.action == "supervision.watch.end"}
        assert verify_chain(db).first_bad_seq is None
        assert sessions["chen.jie"].id not in {s.id for s in ended.values()}


@pytest.mark.postgres
def test_two_survivors_looking_at_once_declare_a_death_exactly_once(pg_engine: Engine) -> None:
    engine = pg_engine
    with session_scope(engine) as db:
        for name in ("a", "b", "c"):
            _join(db, name, NOW)
        _owned_world(db)
    later = NOW + DEAD_AFTER + timedelta(seconds=1)
    with session_scope(engine) as db:  # b and c beat; a does not
        for name in ("b", "c"):
            node = db.get(GatewayNode, name)
            assert node is not None
            service.beat(db, node, later)
    start, declared = threading.Barrier(2), {}

    def survivor(name: str) -> None:
        start.wait()
        with session_scope(engine) as db:
            declared[name] = service.declare_dead_nodes(db, name, later, DEAD_AFTER)

    threads = [threading.Thread(target=survivor, args=(name,)) for name in ("b", "c")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(declared.values()) == [[], ["a"]]
    with Session(engine) as db:
        assert len(db.exec(select(AuditEvent).where(AuditEvent.action == "node.lost")).all()) == 1
        assert len(db.exec(select(AuditEvent).where(AuditEvent.action == "session.end")).all()) == 2
        assert verify_chain(db).first_bad_seq is None


def test_a_second_node_on_sqlite_is_refused_while_the_first_lives_and_the_refusal_is_audited(
    engine: Engine,
) -> None:
    from gateway.nodes.lifecycle import join_cluster
    from gateway.nodes.settings import ClusterSettings

    clock = lambda: NOW  # noqa: E731
    join_cluster(engine, "a", ClusterSettings(), clock)
    if is_postgres(engine):  # the positive control: PostgreSQL takes the second node
        assert join_cluster(engine, "b", ClusterSettings(), clock).state is NodeState.LIVE
        return
    with pytest.raises(SecondNodeOnSqlite, match="several nodes need PostgreSQL"):
        join_cluster(engine, "b", ClusterSettings(), clock)
    # a restart of a itself is not a second node; b is taken once a has been silent past the dead time
    assert join_cluster(engine, "a", ClusterSettings(), clock).state is NodeState.LIVE
    assert join_cluster(engine, "b", ClusterSettings(), lambda: NOW + timedelta(seconds=16)).name == "b"
    with Session(engine) as db:
        refusals = db.exec(select(AuditEvent).where(AuditEvent.outcome == "refused_second_node_on_sqlite")).all()
        assert [(e.target, json.loads(e.detail)) for e in refusals] == [("b", {"live_node": "a"})]


def _leg(db: Session, session: HomeSession, node: str | None) -> CallLeg:
    leg = CallLeg(
        id=uuid.uuid4().hex, session_id=session.id, person_id=session.person_id, login=session.login, node=node,
        e164="+441632960001", state=LegState.CONNECTED, created_at=NOW, updated_at=NOW,
    )  # fmt: skip
    db.add(leg)
    db.flush()
    return leg


def test_the_voice_legs_and_watches_a_dead_node_served_end_with_it_and_no_others(engine: Engine) -> None:
    """Legs and watches name their node: a's end with a even when their session lives on (chen.jie's session has no
    seat or tunnel there, only the leg and the watch a served); b's and those of no node (before 0014) stay."""
    with session_scope(engine) as db:
        _join(db, "a", NOW - timedelta(minutes=5) if not is_postgres(engine) else NOW)
        _join(db, "b", NOW)
        sessions = {n: agent_session(db, n, NOW, wireguard_key=key_pair()[1])[0] for n in ("chen.jie", "zhao.lei")}
        legs = {
            "a": _leg(db, sessions["chen.jie"], "a").id,
            "b": _leg(db, sessions["zhao.lei"], "b").id,
            None: _leg(db, sessions["zhao.lei"], None).id,
        }
        for node, login in (("a", "chen.jie"), ("b", "zhao.lei"), (None, "zhao.lei")):
            db.add(ScreenWatch(supervisor="sup", session_id=sessions[login].id, login=login, node=node,
                               agent_told=True, started_at=NOW))  # fmt: skip
    with session_scope(engine) as db:
        assert service.declare_dead_nodes(db, "b", NOW + DEAD_AFTER + timedelta(seconds=1), DEAD_AFTER) == ["a"]
    with Session(engine) as db:
        wanted = {node: db.get(CallLeg, leg_id).wanted for node, leg_id in legs.items()}  # type: ignore[union-attr]
        assert wanted == {"a": False, "b": True, None: True}
        ended = {w.node: w.ended_at is not None for w in db.exec(select(ScreenWatch))}
        assert ended == {"a": True, "b": False, None: False}
        assert db.get(HomeSession, sessions["chen.jie"].id).state is SessionState.ACTIVE  # type: ignore[union-attr]
        audit = db.exec(select(AuditEvent)).all()
        assert [(e.action, e.target, e.outcome, e.actor) for e in audit if e.outcome == "node_lost"] == [
            ("voice.leg.release", sessions["chen.jie"].id, "node_lost", "node:b"),
            ("supervision.watch.end", "chen.jie", "node_lost", "node:b"),
        ]
        assert verify_chain(db).first_bad_seq is None
