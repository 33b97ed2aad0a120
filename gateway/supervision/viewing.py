"""A supervisor watching an agent's seat: one-time view tokens, spent only under an open, audited watch.

A Guacamole seat is watched by a read-only join of its live guacd connection (`offer_view` mints it with
`LaunchGate.issue_supervisor_view`: `read-only=true`, `disable-paste=true`); guacamole-lite redeems it at the
loopback routes, which hold it to the same watch (`view_may_go_on`, handed to them as `WATCHED_VIEW_JOINS`).
For an X11 seat:

Supervision's "watch" (`gateway.supervision.monitoring.start_watch`) decides whether policy allows it and
writes the `ScreenWatch`; it asks the app's viewer (`seat_broker_viewer` → `offer_view`) for a link. The link
carries a one-time token of mode ``view`` bound to the supervisor's session and the agent's seat lease.
The websocket behind it (`routes/view.py`) spends it with `spend_view_token`, which checks again (role,
policy, the watch still open), and then authenticates to x11vnc with the seat's VIEW-ONLY password:
x11vnc itself ignores that client's keyboard, pointer and clipboard. No parameter selects the password;
a view grant has no other (`view_password`).
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from sqlmodel import Session, col, select

from desktop_broker.guacamole.gate import LaunchMode
from desktop_broker.pool import PooledSeat
from gateway.clock import as_utc
from gateway.errors import Forbidden
from gateway.policies.service import current_policy, effective_policy
from gateway.seats.launch_store import bind_view_launch
from gateway.seats.models import LaunchToken, SeatLease, SeatLeaseState
from gateway.seats.service import LIVE, SeatSource
from gateway.seats.tokens import VIEW, mint, spend, token_sha256
from gateway.sessions.models import HomeSession, SessionState
from gateway.sessions.service import get_session, live_sessions, policy_groups
from gateway.supervision.errors import NothingToWatch, ScreenViewingUnavailable
from gateway.supervision.models import ScreenWatch
from gateway.supervision.monitoring import ScreenThumbnails, ScreenViewer, end_watch
from gateway.supervision.scope import may_see
from gateway.supervision.watch_rules import open_watch
from policy import GuacamoleApp

SUPERVISOR = "supervisor"


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
        if agent is None or not effective_policy(db, policy_groups(agent), now).view_only_supervision:
            return "policy does not allow watching this agent's screen"
        if not may_see(db, session, agent):
            return "this agent is not in your teams"
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
    """Whether the stream may go on: watch open, supervisor still signed in, seat live, policy still allows, and the
    agent still in the supervisor's teams (a team mapping changed under a running watch ends it, as at its start)."""
    watch = db.get(ScreenWatch, grant.watch_id)
    supervisor = get_session(db, grant.supervisor_session_id)
    lease = db.get(SeatLease, grant.lease_id)
    agent = get_session(db, lease.session_id) if lease is not None else None
    if watch is None or watch.ended_at is not None or lease is None or lease.state not in LIVE or agent is None:
        return False
    if supervisor is None or supervisor.state is not SessionState.ACTIVE or not may_see(db, supervisor, agent):
        return False
    return effective_policy(db, policy_groups(agent), now).view_only_supervision


def end_view(db: Session, grant: ViewGrant, now: datetime, source: str) -> None:
    """The stream closed: end the watch (audited ``supervision.watch.end`` unless already ended)."""
    supervisor = get_session(db, grant.supervisor_session_id)
    if supervisor is not None:
        end_watch(db, grant.watch_id, supervisor, now=now, source=source)


def watch_of_view_launch(db: Session, launch_id: str) -> tuple[ScreenWatch, HomeSession] | None:
    """The still open watch a supervisor's Guacamole join was minted for, and the supervisor's session."""
    row = db.get(LaunchToken, launch_id)
    if row is None or row.backend != "guacamole" or row.mode != LaunchMode.VIEW.value or row.lease_id is None:
        return None
    lease = db.get(SeatLease, row.lease_id)
    supervisor = db.get(HomeSession, row.session_id) if row.session_id else None
    if lease is None or supervisor is None:
        return None
    watch = open_watch(db, supervisor.login, lease.session_id, as_utc(row.created_at))
    return (watch, supervisor) if watch is not None else None


def view_may_go_on(db: Session, launch_id: str, now: datetime) -> bool:
    """Whether a supervisor's Guacamole join may go on: its watch open, the watched lease live, the agent's and the
    supervisor's sessions active, the supervisor still one and the agent still in their teams, and the agent's policy
    still allowing it (fail closed)."""
    watching = watch_of_view_launch(db, launch_id)
    row = db.get(LaunchToken, launch_id)
    if watching is None or row is None or row.lease_id is None:
        return False
    _, supervisor = watching
    lease = db.get(SeatLease, row.lease_id)
    agent = db.get(HomeSession, lease.session_id) if lease is not None else None
    if lease is None or lease.state is SeatLeaseState.ENDED or agent is None or agent.state is not SessionState.ACTIVE:
        return False
    if supervisor.state is not SessionState.ACTIVE or SUPERVISOR not in supervisor.role_set:
        return False
    if not may_see(db, supervisor, agent):
        return False
    return effective_policy(db, policy_groups(agent), now).view_only_supervision


class WatchedViewJoins:
    """The seats domain's `ViewJoins`: a supervisor's Guacamole join lives and ends with its watch."""

    def may_go_on(self, db: Session, launch_id: str, now: datetime) -> bool:
        return view_may_go_on(db, launch_id, now)

    def close(self, db: Session, launch_id: str, now: datetime) -> bool:
        watching = watch_of_view_launch(db, launch_id)
        if watching is None:
            return False
        watch, supervisor = watching
        assert watch.id is not None
        end_watch(db, watch.id, supervisor, now=now, source="loopback")
        return True


WATCHED_VIEW_JOINS = WatchedViewJoins()


def seat_broker_viewer(state: Any) -> ScreenViewer:
    """The gateway's screen viewer: a view-only link from this node's seat broker, which the lifespan starts
    (``state`` is the app's; the broker is looked up at each watch, so a gateway without one says why)."""

    def view(db: Session, agent: HomeSession, supervisor: str) -> str:
        broker = getattr(state, "seat_broker", None)
        if broker is None:
            raise ScreenViewingUnavailable("no seat broker runs on this gateway node, so no screen can be watched")
        return offer_view(db, agent, supervisor, broker, broker.clock())

    return view


def seat_broker_thumbnails(state: Any) -> ScreenThumbnails:
    """The screen wall's pictures: from this node's seat broker, looked up at each request (None without one)."""

    def picture(db: Session, agent: HomeSession) -> bytes | None:
        broker = getattr(state, "seat_broker", None)
        return None if broker is None else broker.screen_thumbnail(db, agent)

    return picture
