"""One record per logged-in agent: portal session, tunnel, seat, voice leg and work state joined.

The wall, the alert rules and the metrics all read this; it costs a fixed number of queries whatever the number of
seats (sessions, work states, tunnel leases, voice legs, watches, help requests, seat leases).
"""

import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select as sql_select
from sqlmodel import Session, col, select

from gateway.clock import as_utc
from gateway.sessions.models import HomeSession, SessionState
from gateway.supervision.help import open_requests
from gateway.supervision.links import LinkQuality, link_quality
from gateway.supervision.models import ScreenWatch, WorkStatus
from gateway.supervision.settings import SupervisionSettings
from gateway.supervision.sources import seats_of
from gateway.supervision.state import state_times
from gateway.voice.status import session_legs

IDLE_BUCKET_SECONDS = 10
"""Idle start is rounded down to this, so sources that compute it from a growing idle time send no update."""


@dataclass
class SeatRow:
    session_id: str
    login: str
    name: str
    teams: list[str]
    on_site: bool
    logged_in_at: str
    state: str
    reason: str
    state_since: str | None
    earlier: dict[str, float] = field(default_factory=dict)
    """Seconds spent in each state before the current stretch, this session."""
    link: str = LinkQuality.NONE.value
    handshake_at: str | None = None
    voice: str | None = None
    seat: str | None = None
    seat_node: str | None = None
    """The node running the seat: the wall asks that node for the seat's picture (``?node=``, which the balancer
    routes by), since only the node that runs a seat can read its screen."""
    idle_since: str | None = None
    break_too_long: bool = False
    watched: bool = False
    help_since: str | None = None
    """When the agent asked for help (an open request), with the customer call then in progress (``help_call``)."""
    help_call: str | None = None
    policy_groups: tuple[str, ...] = ()
    """The agent's group identifiers: what team scope is decided with; never sent to a browser."""

    def as_dict(self) -> dict[str, object]:
        """The row as JSON-ready data for the wall (a shallow copy: the wall compares and encodes it, never changes
        it); the group identifiers stay on the server."""
        row = dict(vars(self))
        del row["policy_groups"]
        return row


ENDING = "ending"
"""The wall's state of a session that was ended while its children still close."""


@dataclass(frozen=True)
class LiveAgent:
    """The few columns of a live session the wall needs (not the certificate PEM and the rest, 1,000 times a tick)."""

    id: str
    login: str
    display_name: str | None
    groups: str
    policy_groups: str
    source_ip: str
    created_at: datetime
    ending: bool = False
    """Ended, while its tunnel, seat or voice leg still closes: shown as "ending", never as live."""


def wall_agents(db: Session) -> list[LiveAgent]:
    """Sessions that are active or ending and hold the agent role, by login."""
    columns = (
        HomeSession.roles,
        HomeSession.state,
        HomeSession.id,
        HomeSession.login,
        HomeSession.display_name,
        HomeSession.groups,
        HomeSession.policy_groups,
        HomeSession.source_ip,
        HomeSession.created_at,
    )
    query = (
        sql_select(*[col(column) for column in columns])
        .where(
            col(HomeSession.state).in_([SessionState.ACTIVE, SessionState.ENDING]),
            col(HomeSession.roles).contains("agent"),
        )
        .order_by(col(HomeSession.login))
    )
    return [
        LiveAgent(
            row.id,
            row.login,
            row.display_name,
            row.groups,
            row.policy_groups,
            row.source_ip,
            row.created_at,
            ending=row.state is SessionState.ENDING,
        )
        for row in db.execute(query).all()
        if "agent" in row.roles.split(",")
    ]


def teams_of(session: HomeSession | LiveAgent, team_groups: Sequence[str]) -> list[str]:
    """The agent's teams: their directory groups, limited to ``team_groups`` when set (compared as AD does)."""
    groups = [str(group) for group in json.loads(session.groups or "[]")]
    if not team_groups:
        return sorted(groups)
    wanted = {group.lower() for group in team_groups}
    return sorted(group for group in groups if group.lower() in wanted)


def is_on_site(source_ip: str, settings: SupervisionSettings) -> bool:
    """On-site when the session came from one of the office networks; home otherwise (or when unknown)."""
    try:
        address = ipaddress.ip_address(source_ip)
    except ValueError:
        return False
    return any(address in network for network in settings.office_networks)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


def _watched(db: Session, session_ids: list[str]) -> set[str]:
    if not session_ids:
        return set()
    query = select(ScreenWatch.session_id).where(
        col(ScreenWatch.session_id).in_(session_ids), col(ScreenWatch.ended_at).is_(None)
    )
    return set(db.exec(query).all())


def seat_view(db: Session, now: datetime, settings: SupervisionSettings | None = None) -> list[SeatRow]:
    """Every live agent session as a row, ordered by login; an ending one with the state "ending"."""
    settings = settings or SupervisionSettings()
    sessions = wall_agents(db)
    ids = [s.id for s in sessions]
    times = state_times(db, ids)
    links = link_quality(db, ids, now, settings.link_down_seconds)
    legs = session_legs(db, ids)
    seats = seats_of(db, ids)
    watched = _watched(db, ids)
    helps = open_requests(db, ids)
    break_limit = timedelta(minutes=settings.break_max_minutes)
    rows = []
    for session in sessions:
        state = times[session.id]
        seat = seats.get(session.id)
        idle_since = None
        if seat is not None and seat.idle_since is not None:
            bucket = int(seat.idle_since.timestamp()) // IDLE_BUCKET_SECONDS * IDLE_BUCKET_SECONDS
            idle_since = datetime.fromtimestamp(bucket, UTC)
        leg = legs.get(session.id)
        rows.append(
            SeatRow(
                session_id=session.id,
                login=session.login,
                name=session.display_name or session.login,
                teams=teams_of(session, settings.team_groups),
                on_site=is_on_site(session.source_ip, settings),
                logged_in_at=_iso(as_utc(session.created_at)) or "",
                state=ENDING if session.ending else state.status.value,
                reason=state.reason,
                state_since=_iso(state.since or as_utc(session.created_at)),
                earlier={key: round(value) for key, value in state.earlier.items()},
                link=links[session.id].quality.value,
                handshake_at=_iso(links[session.id].latest_handshake_at),
                voice=leg.state.value if leg else None,
                seat=seat.seat_id if seat else None,
                seat_node=seat.node if seat else None,
                idle_since=_iso(idle_since),
                break_too_long=state.status is WorkStatus.BREAK
                and state.since is not None
                and now - state.since > break_limit,
                watched=session.id in watched,
                help_since=_iso(as_utc(helps[session.id].requested_at)) if session.id in helps else None,
                help_call=helps[session.id].call if session.id in helps else None,
                policy_groups=tuple(json.loads(session.policy_groups)),
            )
        )
    return rows
