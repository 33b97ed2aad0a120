"""Tunnel leases: written when an agent's session becomes active, retired when it ends.

A lease exists only for a session whose certificate binds a WireGuard key; its scope is the network scope of
the policy in force and the session's groups, written with the lease and rewritten by `rescope_leases` whenever
either changes (the ``vpn.scope`` worker). Leases are a record and a wish; whether a peer is installed is decided
again on every reconcile from the session's own state (`reconcile.desired_peers`).
"""

import json
from collections.abc import Collection
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from gateway.audit.service import AuditEntry, record, record_all
from gateway.clock import as_utc
from gateway.events import nudge_after_commit
from gateway.policies.service import current_policy
from gateway.sessions.models import HomeSession, SessionState
from gateway.sessions.service import policy_groups
from gateway.vpn import ipam
from gateway.vpn.errors import AddressTaken
from gateway.vpn.models import LeaseState, TunnelLease
from gateway.vpn.settings import VpnSettings
from policy import PolicyDocument, compile_network_scope, evaluate

LEASE_WRITTEN = "vpn.lease_written"
LEASE_RETIRED = "vpn.lease_retired"
"""Nudged when a lease was marked removed (its session ended); the payload is the session id."""


def session_may_tunnel(session: HomeSession, now: datetime) -> bool:
    """Active, within its time, and holding a certificate-bound WireGuard key."""
    return (
        session.state is SessionState.ACTIVE
        and bool(session.wireguard_key)
        and now < as_utc(session.expires_at)
        and (session.cert_not_after is None or now < as_utc(session.cert_not_after))
    )


def lease_for_session(
    db: Session, session: HomeSession, now: datetime, settings: VpnSettings, node: str | None = None
) -> TunnelLease | None:
    """The session's lease, written on first call; None when the session may not have a tunnel.

    A lease written here belongs to ``node`` (this node; None on a node that does not name itself): its peer is
    installed there and the agent's config names this node's ``settings.endpoint``.

    Flushes only. Concurrent first calls for one agent may raise `AddressTaken`: run under `ipam.retrying`.
    """
    existing = db.exec(select(TunnelLease).where(TunnelLease.session_id == session.id)).first()
    if existing is not None:
        return existing if existing.state is LeaseState.DESIRED else None
    lease = _write_lease(db, session, now, settings, node)
    if lease is not None:
        record_all(db, [_granted(lease)])
    return lease


def _write_lease(
    db: Session, session: HomeSession, now: datetime, settings: VpnSettings, node: str | None
) -> TunnelLease | None:
    """The session's new lease with the person's address (`ipam.assign` takes their row), flushed and nudged but not
    audited: the caller audits it once every address its transaction needs is held. None when the session may not
    have a tunnel."""
    if not session_may_tunnel(session, now):
        return None
    assert session.wireguard_key is not None  # checked by session_may_tunnel
    session_id = session.id  # read now: a failed flush expires the session's attributes, which cannot load again
    address = ipam.assign(db, session.person_id, session.login, settings, now)
    lease = TunnelLease(
        session_id=session.id,
        person_id=session.person_id,
        login=session.login,
        public_key=session.wireguard_key,
        ipv4=address.ipv4,
        ipv6=address.ipv6,
        scope=scope_of(current_policy(db), policy_groups(session), now),
        state=LeaseState.DESIRED,
        node=node,
        gateway_endpoint=settings.endpoint,
        created_at=now,
    )
    db.add(lease)
    try:
        db.flush()
    except IntegrityError as error:  # the controller's pass and a config download wrote it at the same moment
        raise AddressTaken(f"the tunnel lease of session {session_id} was written concurrently") from error
    nudge_after_commit(db, LEASE_WRITTEN, session_id)  # before the audit row, which sends it
    return lease


def _granted(lease: TunnelLease) -> AuditEntry:
    return AuditEntry(
        actor="vpn",
        action="vpn.lease",
        target=lease.login,
        outcome="granted",
        detail={
            "session": lease.session_id,
            "ipv4": lease.ipv4,
            "ipv6": lease.ipv6,
            "public_key": lease.public_key,
            "person": lease.person_id,
            "node": lease.node,
        },
    )


def scope_of(document: PolicyDocument, groups: list[str], now: datetime) -> str:
    """The network scope ``document`` grants ``groups``, as a lease stores it: JSON [cidr, protocol, port or null]."""
    return json.dumps([list(item) for item in compile_network_scope(evaluate(document, groups, now)).allowed])


def rescope_leases(db: Session, now: datetime, sessions: Collection[str] | None = None) -> list[str]:
    """Give the desired leases of active sessions (all, or those of ``sessions``) the scope the policy in force grants
    their session's groups now; each lease whose scope changes is written, audited (``rescoped``, old and new) and
    nudged (``LEASE_WRITTEN``), so the node that holds its peer changes the seat's set elements at once. The sessions
    whose scope changed; an unchanged policy writes nothing.

    Read as plain rows (a policy change touches every lease), each distinct set of groups evaluated once; the leases
    to change are then locked in one statement and compared again, so two nodes told of one change at once write and
    audit it once; their audit rows are written first, so the leases' updates go to the database in one batch."""
    query = (
        select(col(TunnelLease.id), col(HomeSession.policy_groups), col(TunnelLease.scope))
        .join(HomeSession, col(HomeSession.id) == col(TunnelLease.session_id))
        .where(col(TunnelLease.state) == LeaseState.DESIRED)
        .where(col(HomeSession.state) == SessionState.ACTIVE)
    )
    if sessions is not None:
        query = query.where(col(TunnelLease.session_id).in_(list(sessions)))
    document = current_policy(db)
    granted: dict[frozenset[str], str] = {}  # evaluate depends only on the set of groups
    wanted: dict[int | None, str] = {}  # a stored id is never None; the model types it so
    for lease_id, groups_json, stored in db.exec(query).all():
        groups = json.loads(groups_json)
        key = frozenset(groups)
        if key not in granted:
            granted[key] = scope_of(document, groups, now)
        if granted[key] != stored:
            wanted[lease_id] = granted[key]
    if not wanted:
        return []
    locked = select(TunnelLease).where(col(TunnelLease.id).in_(list(wanted))).with_for_update()
    changing = [
        lease
        for lease in db.exec(locked.execution_options(populate_existing=True)).all()
        if lease.state is LeaseState.DESIRED and lease.scope != wanted[lease.id]
    ]
    for lease in changing:
        record(
            db,
            actor="vpn",
            action="vpn.lease",
            target=lease.login,
            outcome="rescoped",
            detail={
                "session": lease.session_id,
                "person": lease.person_id,
                "old": json.loads(lease.scope),
                "new": json.loads(wanted[lease.id]),
            },
        )
    for lease in changing:
        lease.scope = wanted[lease.id]
        db.add(lease)
        nudge_after_commit(db, LEASE_WRITTEN, lease.session_id)
    db.flush()
    return [lease.session_id for lease in changing]


def lease_missing_sessions(
    db: Session,
    now: datetime,
    settings: VpnSettings,
    sessions: Collection[str] | None = None,
    node: str | None = None,
) -> int:
    """Write the leases of active keyed sessions that have none (a missed "started" nudge, a restart); of all such
    sessions, or only of ``sessions``; with a ``node``, only of the sessions signed in on it, so two nodes never race
    to own one tunnel. Returns the number written.

    The persons' address rows are all taken before the first audit row, which holds the chain's head until the
    commit: a config download (`lease_for_session`) holds its person's row while it waits for that head, so a row
    taken after an audit row deadlocked with it. Those that exist are locked first (`ipam.lock_addresses`), so a
    download beside waits for this pass and then finds its lease (`ipam.retrying`); a newcomer's row is inserted by
    `ipam.assign`, every lease written in the persons' order, and the audit rows come after the last
    (docs/vpn.md, "What IPAM guarantees")."""
    query = (
        select(HomeSession)
        .where(HomeSession.state == SessionState.ACTIVE)
        .where(col(HomeSession.wireguard_key).is_not(None))
    )
    if sessions is None:  # every session: one list of the leased ones (SQLite builds it once), not 10,000 probes
        query = query.where(col(HomeSession.id).not_in(select(TunnelLease.session_id)))
    else:  # a nudge's few sessions: a probe of the lease index each, not a list of every leased session first
        leased = sa.exists().where(col(TunnelLease.session_id) == col(HomeSession.id))
        query = query.where(col(HomeSession.id).in_(list(sessions))).where(~leased)
    if node is not None:
        query = query.where(HomeSession.node == node)
    found = db.exec(query.order_by(col(HomeSession.person_id))).all()
    ipam.lock_addresses(db, {session.person_id for session in found})
    if found:
        # A download that wrote one of these leases before the rows were locked has committed it by now: look again,
        # or this pass's insert of the same lease fails, and every other lease of the pass with it.
        still_missing = set(db.execute(query.with_only_columns(col(HomeSession.id))).scalars())
        found = [session for session in found if session.id in still_missing]
    written = [lease for session in found if (lease := _write_lease(db, session, now, settings, node)) is not None]
    for lease in written:  # one each: PostgreSQL's first append is one statement built for its number of rows
        record_all(db, [_granted(lease)])
    return len(written)


def retire_ended_leases(db: Session, now: datetime, sessions: Collection[str] | None = None) -> int:
    """Mark removed the leases whose session is no longer active (of all sessions, or only of ``sessions``), and
    release addresses nobody uses now.

    Their persons' address rows are locked first (`ipam.lock_addresses`), before this transaction's audit rows: a
    lease written beside it for one of them (`ipam.assign` holds the row) commits before the check for the person's
    desired leases below reads, so a released address never lies under a live lease; and a lease written after the
    check waits for this commit, then takes the address back."""
    query = (
        select(TunnelLease, HomeSession)
        .join(HomeSession, col(HomeSession.id) == col(TunnelLease.session_id))
        .where(TunnelLease.state == LeaseState.DESIRED)
        .where(HomeSession.state != SessionState.ACTIVE)
    )
    if sessions is not None:
        query = query.where(col(TunnelLease.session_id).in_(list(sessions)))
    rows = db.exec(query).all()
    persons = {lease.person_id for lease, _ in rows}
    ipam.lock_addresses(db, persons)
    for lease, session in rows:
        lease.state, lease.removed_at = LeaseState.REMOVED, now
        db.add(lease)
        nudge_after_commit(db, LEASE_RETIRED, lease.session_id)
        record(
            db,
            actor="vpn",
            action="vpn.lease",
            target=lease.login,
            outcome="removed",
            detail={
                "session": lease.session_id,
                "reason": session.end_reason.value if session.end_reason else None,
                "person": lease.person_id,
            },
        )
    db.flush()
    for person_id in persons:
        still = db.exec(
            select(TunnelLease.id)
            .where(TunnelLease.person_id == person_id)
            .where(TunnelLease.state == LeaseState.DESIRED)
        ).first()
        if still is None:
            ipam.release(db, person_id, now)
    return len(rows)


def sessions_with_live_tunnels(db: Session, session_ids: Collection[str]) -> set[str]:
    """Of ``session_ids``, those whose tunnel lease is still desired (an ending session waits for it)."""
    query = select(TunnelLease.session_id).where(
        col(TunnelLease.session_id).in_(list(session_ids)), TunnelLease.state == LeaseState.DESIRED
    )
    return set(db.exec(query).all())
