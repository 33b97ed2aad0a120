"""Joining, beating, leaving, and the death of a node, as plain functions on a DB session (they flush only).

A node that stops beating is declared dead by exactly one survivor: the rows of silent nodes are read ``FOR UPDATE
SKIP LOCKED``, so a second survivor looking at the same moment skips the row the first one holds, and finds it dead
already once the first commits. Everything the dead node owned ends with reason ``node_lost`` in that
same transaction, with its seat leases and the watches of its seats: nothing is left half-done, and the audit row of
each ending commits with it or not at all. The sessions of every dead node are marked before the first audit row,
all audited in one append (``end_sessions``): an agent of a dead node signing in again on a survivor has its old
session marked by the take-over, held to its commit, while it waits for the audit chain.
"""

import uuid
from datetime import datetime, timedelta

from sqlalchemy import or_
from sqlmodel import Session, col, select

from gateway.audit.service import record
from gateway.nodes.errors import NodeRefusedItsBeat, SecondNodeOnSqlite
from gateway.nodes.models import GatewayNode, NodeState
from gateway.seats.models import SeatEndReason, SeatLease
from gateway.seats.service import LIVE as LIVE_SEAT
from gateway.seats.service import end_seat
from gateway.sessions.models import EndReason, HomeSession, SessionState
from gateway.sessions.service import end_sessions
from gateway.supervision.models import ScreenWatch
from gateway.voice.models import CallLeg
from gateway.voice.service import release_session
from gateway.vpn.ipam import lock_addresses
from gateway.vpn.leases import retire_ended_leases
from gateway.vpn.models import LeaseState, TunnelLease


def join(
    db: Session,
    name: str,
    now: datetime,
    *,
    dead_after: timedelta,
    shared_database: bool,
) -> GatewayNode:
    """Write this node's row as live with a new incarnation, and return it.

    On SQLite (``shared_database`` false) another node name that beat within ``dead_after`` is refused: its
    operator must point both nodes at PostgreSQL. A node that beat longer ago is dead; the caller's first sweep ends
    what it owned. A row under this node's own name is a previous life of this node and is taken over.
    """
    if not shared_database:
        other = db.exec(
            select(GatewayNode)
            .where(GatewayNode.name != name)
            .where(GatewayNode.state == NodeState.LIVE)
            .where(col(GatewayNode.last_beat_at) > now - dead_after)
        ).first()
        if other is not None:
            raise SecondNodeOnSqlite(
                f"node {other.name!r} is live on this SQLite database; several nodes need PostgreSQL "
                "(set database_url to postgresql+psycopg://… on every node, docs/deployment.md)",
                live_node=other.name,
            )
    node = db.get(GatewayNode, name) or GatewayNode(
        name=name, incarnation="", state=NodeState.LIVE, started_at=now, last_beat_at=now
    )
    previous = node.state if node.incarnation else None
    node.incarnation, node.state, node.started_at, node.last_beat_at = uuid.uuid4().hex, NodeState.LIVE, now, now
    node.declared_dead_at, node.declared_dead_by = None, None
    db.add(node)
    db.flush()
    record(
        db,
        actor=f"node:{name}",
        action="node.join",
        target=name,
        outcome="joined",
        detail={"previous_state": previous.value if previous else None, "incarnation": node.incarnation},
    )
    return node


def audit_sqlite_refusal(db: Session, name: str, refused: SecondNodeOnSqlite) -> None:
    """The refused start's audit row, in a transaction of its own (the join's rolled back with the refusal)."""
    record(
        db,
        actor=f"node:{name}",
        action="node.join",
        target=name,
        outcome="refused_second_node_on_sqlite",
        detail={"live_node": refused.live_node},
    )


def beat(db: Session, node: GatewayNode, now: datetime) -> None:
    """Note that this node lives. A node another survivor declared dead (it stalled longer than ``dead_after``)
    comes back live: what it owned was ended meanwhile, so its reconcilers remove it from the world."""
    row = db.get(GatewayNode, node.name, with_for_update=True)
    if row is None or row.incarnation != node.incarnation:
        raise NodeRefusedItsBeat(
            f"node name {node.name!r} was taken by another process; give every node its own node_name"
        )
    if row.state is not NodeState.LIVE:
        record(db, actor=f"node:{node.name}", action="node.join", target=node.name, outcome="rejoined_after_death")
    row.state, row.last_beat_at = NodeState.LIVE, now
    db.add(row)
    db.flush()


def leave(db: Session, node: GatewayNode, now: datetime) -> None:
    """A clean stop: the row says so, and no survivor declares this node dead later."""
    row = db.get(GatewayNode, node.name)
    if row is not None and row.incarnation == node.incarnation:
        row.state, row.last_beat_at = NodeState.LEFT, now
        db.add(row)
        record(db, actor=f"node:{node.name}", action="node.leave", target=node.name, outcome="left")
        db.flush()


def declare_dead_nodes(db: Session, survivor: str, now: datetime, dead_after: timedelta) -> list[str]:
    """Declare dead every live node silent for longer than ``dead_after`` that no other survivor is declaring at
    this moment, and end what each owned. Returns the names declared dead by this call."""
    silent = db.exec(
        select(GatewayNode)
        .where(GatewayNode.state == NodeState.LIVE)
        .where(GatewayNode.name != survivor)
        .where(col(GatewayNode.last_beat_at) < now - dead_after)
        .with_for_update(skip_locked=True)
    ).all()
    owned = {node.name: sessions_owned_by(db, node.name) for node in silent}
    lock_addresses(db, {session.person_id for sessions in owned.values() for session in sessions})
    # Every dead node's sessions marked before the first audit row, audited in one append (a take-over beside it).
    end_sessions(
        db,
        [(session, EndReason.NODE_LOST) for node in silent for session in owned[node.name]],
        actor=f"node:{survivor}",
        now=now,
        details={session.id: {"node": node.name} for node in reversed(silent) for session in owned[node.name]},
    )
    for node in silent:
        node.state, node.declared_dead_at, node.declared_dead_by = NodeState.DEAD, now, survivor
        db.add(node)
        ended = end_what_it_owned(db, node.name, survivor, now, owned[node.name])
        record(
            db,
            actor=f"node:{survivor}",
            action="node.lost",
            target=node.name,
            outcome="declared_dead",
            detail={"last_beat_at": node.last_beat_at.isoformat(), "sessions_ended": ended},
        )
    db.flush()
    return [node.name for node in silent]


def sessions_owned_by(db: Session, node: str) -> list[HomeSession]:
    """Live sessions holding a live seat or a desired tunnel on ``node``."""
    seat_sessions = select(SeatLease.session_id).where(SeatLease.node == node, col(SeatLease.state).in_(LIVE_SEAT))
    tunnel_sessions = select(TunnelLease.session_id).where(
        TunnelLease.node == node, TunnelLease.state == LeaseState.DESIRED
    )
    return list(
        db.exec(
            select(HomeSession)
            .where(HomeSession.state != SessionState.ENDED)
            .where(or_(col(HomeSession.id).in_(seat_sessions), col(HomeSession.id).in_(tunnel_sessions)))
        ).all()
    )


def end_what_it_owned(db: Session, node: str, survivor: str, now: datetime, sessions: list[HomeSession]) -> int:
    """End what ``node`` owned beside ``sessions``, those of its seats and tunnels (`sessions_owned_by`), which the
    caller has ended with ``node_lost`` already (`declare_dead_nodes`: every dead node's, marked before the first
    audit row, one append): its seat leases, the watches of those sessions or served by ``node``; and release the
    voice legs ``node`` held; every ending audited. The dead node's tunnel leases are retired here (their peers died
    with its WireGuard), so its sessions can be marked ended once the survivors' reconcilers have hung up the legs,
    as for any ending. Returns the number of ``sessions`` (those ended for ``node``).

    The caller has locked the address rows of the sessions' persons (`lock_addresses`) before its first audit row:
    the retirement takes them, and the agent's new lease on a survivor holds its row while it waits for the audit
    chain's head, which the first audit row holds to the commit (taken after it, the two deadlocked)."""
    for lease in db.exec(select(SeatLease).where(SeatLease.node == node, col(SeatLease.state).in_(LIVE_SEAT))):
        end_seat(db, lease, SeatEndReason.LOST, now, detail={"node": node, "reason": EndReason.NODE_LOST.value})
    ended_ids = [session.id for session in sessions]
    retire_ended_leases(db, now, ended_ids)
    legs = db.exec(select(CallLeg).where(CallLeg.node == node, col(CallLeg.wanted).is_(True))).all()
    for session_id in sorted({leg.session_id for leg in legs}):
        released = release_session(db, session_id, now)
        record(
            db,
            actor=f"node:{survivor}",
            action="voice.leg.release",
            target=session_id,
            outcome=EndReason.NODE_LOST.value,
            detail={"legs": released, "node": node},
        )
    watches = db.exec(
        select(ScreenWatch)
        .where(or_(col(ScreenWatch.session_id).in_(ended_ids), col(ScreenWatch.node) == node))
        .where(col(ScreenWatch.ended_at).is_(None))
    ).all()
    for watch in watches:
        watch.ended_at = now
        db.add(watch)
        record(
            db,
            actor=f"node:{survivor}",
            action="supervision.watch.end",
            target=watch.login,
            outcome=EndReason.NODE_LOST.value,
            detail={"watch": watch.id, "session": watch.session_id, "node": node},
        )
    db.flush()
    return len(sessions)
