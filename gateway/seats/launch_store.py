"""Guacamole launches in the launch_token table: the gate's `LaunchStore`, and their tie to a lease.

`take` is one atomic ``UPDATE … WHERE used_at IS NULL``: of two nodes redeeming the same launch, one wins.
An agent's launch is bound to the lease and home session it opens (`bind_launch`, in the launch's transaction);
it is redeemed, and its live connection kept (server.js asks `/internal/launch/alive`), only while that lease is
live and that session active: a seat ending closes guacamole-lite's websocket and guacd's socket. A supervisor's
read-only join is bound to the watched lease and the supervisor's session (`bind_view_launch`); it lives only while
the watch it was minted for is open, the supervisor signed in, the seat live and policy still allows watching.
"""

import hmac
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import or_, update
from sqlmodel import Session, col

from desktop_broker.guacamole.gate import Launch, LaunchGate, LaunchMode, LaunchRefused
from gateway.clock import Clock, as_utc
from gateway.seats.models import LaunchToken, SeatLease, SeatLeaseState
from gateway.sessions.models import HomeSession, SessionState


class ViewJoins(Protocol):
    """A supervisor's read-only join answers to the watch it was opened for, which is supervision's, not the seats'.

    The app passes supervision's rules in (`gateway.supervision.viewing.WATCHED_VIEW_JOINS` on
    ``app.state.view_joins``), so this domain asks without importing the one above it.
    """

    def may_go_on(self, db: Session, launch_id: str, now: datetime) -> bool:
        """Whether the join may be redeemed or kept (fail closed: False for a launch that is no join)."""
        ...

    def close(self, db: Session, launch_id: str, now: datetime) -> bool:
        """Its stream closed: end the watch (audited); False when the launch was no supervisor's join."""
        ...


class DbLaunchStore:
    """Launches as rows of the caller's transaction (flushed, never committed here)."""

    def __init__(self, db: Session, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def add(self, launch: Launch, now: datetime) -> None:
        self._db.add(
            LaunchToken(
                id=launch.launch_id,
                token_sha256=launch.token_sha256,
                backend="guacamole",
                mode=launch.mode.value,
                login=launch.user,
                seat_id=launch.seat,
                created_at=now,
                expires_at=launch.expires_at,
            )
        )
        self._db.flush()

    def take(self, launch_id: str) -> Launch | None:
        taken = self._db.execute(
            update(LaunchToken)
            .where(
                col(LaunchToken.id) == launch_id,
                col(LaunchToken.backend) == "guacamole",
                col(LaunchToken.used_at).is_(None),
            )
            .values(used_at=self._clock(), used_by="guacamole-lite")
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            return None
        row = self._db.get(LaunchToken, launch_id)
        assert row is not None
        self._db.refresh(row)
        return Launch(row.id, row.login, row.seat_id, LaunchMode(row.mode), row.token_sha256, as_utc(row.expires_at))


def bind_launch(db: Session, launch_id: str, lease: SeatLease) -> None:
    """Tie a minted launch to the lease it opens and that lease's session (the lease is written after the
    launch, so that a refused launch leaves no lease; hence a second step, in the same transaction)."""
    row = db.get(LaunchToken, launch_id)
    if row is None:
        raise LookupError(f"launch {launch_id} was not minted in this transaction")
    row.lease_id, row.session_id = lease.id, lease.session_id
    db.add(row)
    db.flush()


def bind_view_launch(db: Session, launch_id: str, lease: SeatLease, supervisor: HomeSession) -> None:
    """Tie a supervisor's minted read-only join to the watched lease and the supervisor's own session."""
    row = db.get(LaunchToken, launch_id)
    if row is None or row.mode != LaunchMode.VIEW.value:
        raise LookupError(f"view launch {launch_id} was not minted in this transaction")
    row.lease_id, row.session_id = lease.id, supervisor.id
    db.add(row)
    db.flush()


def launch_is_alive(db: Session, launch_id: str, now: datetime, views: ViewJoins) -> bool:
    """May the launch's live connection go on: an agent's seat, or a supervisor's watch of it."""
    return live_lease_of_launch(db, launch_id) is not None or views.may_go_on(db, launch_id, now)


def live_lease_of_launch(db: Session, launch_id: str) -> SeatLease | None:
    """The lease an interactive Guacamole launch opens, while it is live and its home session active.

    None for anything else, including launches bound to nothing and view launches (fail closed).
    """
    row = db.get(LaunchToken, launch_id)
    if row is None or row.backend != "guacamole" or row.mode != LaunchMode.INTERACTIVE.value or row.lease_id is None:
        return None
    lease = db.get(SeatLease, row.lease_id)
    if lease is None or lease.state is SeatLeaseState.ENDED or lease.session_id != row.session_id:
        return None
    session = db.get(HomeSession, lease.session_id)
    return lease if session is not None and session.state is SessionState.ACTIVE else None


def redeem_launch(
    db: Session, gate: LaunchGate, launch_id: str, token_sha256: str, now: datetime, views: ViewJoins
) -> Launch:
    """Spend the launch (once, unexpired, exact token), then require its lease live and its session active (an
    agent's), or its watch open under the same rules as while it runs (a supervisor's read-only join)."""
    launch = gate.redeem(launch_id, token_sha256)
    if launch.mode is LaunchMode.VIEW:
        if not views.may_go_on(db, launch_id, now):
            raise LaunchRefused("the watch this view was opened for has ended, or may not go on; press watch again")
    elif live_lease_of_launch(db, launch_id) is None:
        raise LaunchRefused("the seat or the portal session of this launch has ended; sign in and open the app again")
    return launch


def proven_launch(db: Session, launch_id: str, token_sha256: str) -> LaunchToken:
    """The redeemed Guacamole launch whose token hashes to `token_sha256`: the proof server.js gives with its
    `connected` and `closed` reports, as it alone holds the token it redeemed (loopback alone would let any local
    account report for a launch id it learned). Raises `LaunchRefused` otherwise."""
    row = db.get(LaunchToken, launch_id)
    if row is None or row.backend != "guacamole" or row.used_at is None:
        raise LaunchRefused("no redeemed launch has this id")
    if not hmac.compare_digest(row.token_sha256, token_sha256):
        raise LaunchRefused("the report does not carry the launch's token")
    return row


def report_connected(db: Session, launch_id: str, token_sha256: str, connection_id: str, now: datetime) -> None:
    """Record guacd's id of the launch's live connection (what a supervisor's read-only join selects): once per
    launch, so a later report cannot point the seat's joins at another connection. Raises `LaunchRefused`."""
    launch = proven_launch(db, launch_id, token_sha256)
    if launch.connection_id is not None:
        raise LaunchRefused("this launch already reported its guacd connection")
    launch.connection_id = connection_id
    db.add(launch)
    lease = live_lease_of_launch(db, launch_id)
    if lease is not None:
        lease.connection_id, lease.state, lease.last_activity_at = connection_id, SeatLeaseState.CONNECTED, now
        db.add(lease)


def report_input(db: Session, launch_id: str, token_sha256: str, idle: timedelta, now: datetime) -> None:
    """guacamole-lite saw the agent's keyboard or pointer input `idle` ago on this launch's connection: the lease's
    last input (what the policy's idle timeout counts from) moves there, forward only. A late or repeated report, or
    one placing the input before the seat's hand-over, changes nothing; none can place it after `now`. Only an
    agent's launch of a live lease counts (a supervisor's join types nothing). Raises `LaunchRefused` without the
    launch's token hash, as anything that can keep a seat open must carry it.

    One conditional UPDATE, not a read and a write: two reports of one lease at once (two tabs, two nodes) are
    judged against each other's committed value (PostgreSQL re-checks the condition after the row lock), so the
    later input wins whichever commits last."""
    proven_launch(db, launch_id, token_sha256)
    lease = live_lease_of_launch(db, launch_id)
    if lease is None:
        return
    last_input = now - max(idle, timedelta())
    db.execute(
        update(SeatLease)
        .where(
            col(SeatLease.id) == lease.id,
            col(SeatLease.started_at) < last_input,
            or_(col(SeatLease.last_input_at).is_(None), col(SeatLease.last_input_at) < last_input),
        )
        .values(last_input_at=last_input)
        .execution_options(synchronize_session="fetch")  # SQLite's naive datetimes cannot be judged in Python
    )
