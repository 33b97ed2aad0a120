"""A supervisor watching an agent's seat: one-time view tokens, spent only under an open, audited watch.

A Guacamole seat is watched by a read-only join of its live guacd connection (`offer_view` mints it with
`LaunchGate.issue_supervisor_view`: `read-only=true`, `disable-paste=true`); guacamole-lite redeems it at the
loopback routes, which hold it to the same watch (`launch_store.view_may_go_on`). For an X11 seat:

Supervision's "watch" (`gateway.supervision.monitoring.start_watch`) decides whether policy allows it and
writes the `ScreenWatch`; it asks the broker's registered viewer (`offer_view`) for a link. The link
carries a one-time token of mode ``view`` bound to the supervisor's session and the agent's seat lease.
The websocket behind it (`view_routes`) spends it with `spend_view_token`, which checks again (role,
policy, the watch still open), and then authenticates to x11vnc with the seat's VIEW-ONLY password:
x11vnc itself ignores that client's keyboard, pointer and clipboard. No parameter selects the password;
a view grant has no other (`view_password`).
"""

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from sqlmodel import Session, col, select

from desktop_broker.pool import PooledSeat
from gateway.errors import Conflict, Forbidden
from gateway.policies.service import current_policy
from gateway.seats.launch_store import bind_view_launch
from gateway.seats.models import LaunchToken, SeatLease, SeatLeaseState
from gateway.seats.service import LIVE, SeatSource
from gateway.seats.tokens import VIEW, mint, spend, token_sha256
from gateway.seats.watch_rules import open_watch
from gateway.sessions.models import HomeSession, SessionState
from gateway.sessions.service import get_session, live_sessions, policy_groups
from gateway.supervision.models import ScreenWatch
from gateway.supervision.monitoring import end_watch
from policy import GuacamoleApp, evaluate

SUPERVISOR = "supervisor"


class NothingToWatch(Conflict):
    reason = "seat.view.nothing_to_watch"


@dataclass(frozen=True, slots=True)
class ViewGrant:
    """What a spent view token allows: watching one lease's seat under one open watch."""

    lease_id: str
    seat_id: str
    watch_id: int
    supervisor_session_id: str
    agent_login: str


def offer_view(db: Session, agent: HomeSession, supervisor: str, seats: SeatSource, now: datetime) -> str:
    """The link to a view-only stream of the agent's seat, for the supervisor's live session (the wall's viewer).

    The supervision wall passes the supervisor's login; a login has at most one live session (a new login
    replaces the old), and that session is the one the token is bound to.
    """
    sessions = [s for s in live_sessions(db, supervisor) if SUPERVISOR in s.role_set]
    if len(sessions) != 1:
        raise Forbidden(f"{supervisor} has no live supervisor session; sign in again")
    lease = _watchable_lease(db, agent, seats)
    if lease.backend == "guacamole":
        token = _guacamole_join(db, lease, sessions[0], seats, now)
    else:
        token = mint(db, lease, sessions[0], now, seats.token_lifetime, mode=VIEW)
        if lease.node != seats.node:  # the balancer sends ?node= to the node that runs the seat (deploy/haproxy/)
            return f"/seats/view?token={quote(token)}&node={quote(lease.node)}"
    return f"/seats/view?token={quote(token)}"


def _guacamole_join(db: Session, lease: SeatLease, supervisor: HomeSession, seats: SeatSource, now: datetime) -> str:
    """A read-only join of the lease's live guacd connection, bound to the supervisor's session."""
    app = current_policy(db).app(lease.app_id)
    protocol = app.protocol if isinstance(app, GuacamoleApp) else "rdp"
    assert lease.connection_id is not None
    issued = seats.guacamole_launch_gate(db, now).issue_supervisor_view(
        supervisor=supervisor.login, seat=lease.seat_id, protocol=protocol, connection_id=lease.connection_id
    )
    bind_view_launch(db, issued.launch_id, lease, supervisor)
    return issued.token


def _watchable_lease(db: Session, agent: HomeSession, seats: SeatSource) -> SeatLease:
    """The agent's newest live seat that can be watched: an X11 seat this node runs or another node holds (its
    page and websocket are sent there), or a Guacamole seat whose guacd connection is up (any guacd node can be
    joined through guacamole-lite)."""
    query = (
        select(SeatLease)
        .where(SeatLease.session_id == agent.id, col(SeatLease.state).in_(LIVE))
        .order_by(col(SeatLease.started_at).desc())
    )
    for lease in db.exec(query).all():
        if lease.backend == "guacamole" and lease.state is SeatLeaseState.CONNECTED and lease.connection_id:
            return lease
        if lease.backend == "x11" and (seats.runs(lease) or lease.node != seats.node):
            return lease
    raise NothingToWatch(f"{agent.login} has no application open on a seat right now")


def agent_of_token(db: Session, token: str, supervisor: HomeSession) -> tuple[HomeSession, str] | None:
    """The agent a view token of this supervisor's session shows and the seat's backend (for the page); spends
    nothing."""
    row = db.exec(select(LaunchToken).where(LaunchToken.token_sha256 == token_sha256(token))).first()
    if row is None or row.mode != VIEW or row.session_id != supervisor.id or row.lease_id is None:
        return None
    lease = db.get(SeatLease, row.lease_id)
    agent = get_session(db, lease.session_id) if lease is not None else None
    return (agent, row.backend) if agent is not None else None


def spend_view_token(db: Session, token: str, supervisor: HomeSession | None, now: datetime, source: str) -> ViewGrant:
    """Spend a view token for the cookie's session; `LaunchRefused` (audited ``seat.connect``) otherwise."""
    found: list[ScreenWatch] = []

    def watching_allowed(row: LaunchToken, lease: SeatLease, session: HomeSession) -> str | None:
        if SUPERVISOR not in session.role_set:
            return "only supervisors may watch a seat"
        agent = get_session(db, lease.session_id)
        if agent is None or not evaluate(current_policy(db), policy_groups(agent), now).view_only_supervision:
            return "policy does not allow watching this agent's screen"
        watch = open_watch(db, session.login, lease.session_id, row.created_at)
        if watch is None:
            return "no open watch of this agent (it was stopped); press watch again"
        found.append(watch)
        return None

    lease = spend(db, token, supervisor, now, source, mode=VIEW, check=watching_allowed)
    assert supervisor is not None and found[0].id is not None
    return ViewGrant(lease.id, lease.seat_id, found[0].id, supervisor.id, lease.login)


def view_password(seat: PooledSeat) -> str:
    """The only password a watch ever uses: x11vnc's view-only one (it then ignores all input)."""
    return seat.passwords.view_only


def still_watching(db: Session, grant: ViewGrant, now: datetime) -> bool:
    """Whether the stream may go on: watch open, supervisor still signed in, seat live, policy still allows."""
    watch = db.get(ScreenWatch, grant.watch_id)
    supervisor = get_session(db, grant.supervisor_session_id)
    lease = db.get(SeatLease, grant.lease_id)
    agent = get_session(db, lease.session_id) if lease is not None else None
    if watch is None or watch.ended_at is not None or lease is None or lease.state not in LIVE or agent is None:
        return False
    if supervisor is None or supervisor.state is not SessionState.ACTIVE:
        return False
    return evaluate(current_policy(db), policy_groups(agent), now).view_only_supervision


def end_view(db: Session, grant: ViewGrant, now: datetime, source: str) -> None:
    """The stream closed: end the watch (audited ``supervision.watch.end`` unless already ended)."""
    supervisor = get_session(db, grant.supervisor_session_id)
    if supervisor is not None:
        end_watch(db, grant.watch_id, supervisor, now=now, source=source)
