"""Agent time per work state over a period, in steps (15 or 30 minutes for a day, a day for a month), home and
on-site apart: the reports' stacked state-over-time charts.

Each step holds the seconds agents spent in each state within it, summed over agents (``4:00`` in a 15-minute step
is 16 agents for the whole step). Logged-in time no stretch covers is ``offline`` (an agent who set nothing is "not
ready"), so the states of a step add up to the agents' logged-in time in it.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from gateway.clock import as_utc
from gateway.supervision.models import WorkState, WorkStatus
from gateway.supervision.reports import agent_sessions
from gateway.supervision.settings import SupervisionSettings
from gateway.supervision.view import is_on_site
from policy import SupervisedTeams

LOCATIONS = ("home", "on_site")
STATES = tuple(status.value for status in WorkStatus)


@dataclass
class Timeline:
    starts: list[datetime]
    """The start of each step."""
    seconds: dict[str, dict[str, list[float]]]
    """Location → state → agent seconds in each step."""


def _spread(into: list[float], starts: list[datetime], step: timedelta, begin: datetime, end: datetime) -> None:
    """Add the stretch ``begin``–``end`` to the steps it overlaps."""
    if end <= begin or not starts:
        return
    first = max(0, int((begin - starts[0]) / step))
    for index in range(first, len(starts)):
        start = starts[index]
        if start >= end:
            break
        into[index] += max(0.0, (min(end, start + step) - max(begin, start)).total_seconds())


def state_timeline(
    db: Session,
    start: datetime,
    stop: datetime,
    step: timedelta,
    settings: SupervisionSettings,
    now: datetime,
    teams: SupervisedTeams,
) -> Timeline:
    """Agent seconds per state and step for the agents of ``teams``, home and on-site apart."""
    count = max(1, int((stop - start) / step))
    starts = [start + step * index for index in range(count)]
    seconds = {where: {state: [0.0] * count for state in STATES} for where in LOCATIONS}
    sessions = agent_sessions(db, start, stop, now, teams)
    ends = {s.id: min(as_utc(s.ended_at or now), stop) for s in sessions}
    where = {s.id: "on_site" if is_on_site(s.source_ip, settings) else "home" for s in sessions}
    covered: dict[str, list[float]] = defaultdict(lambda: [0.0] * count)
    query = select(WorkState).where(col(WorkState.session_id).in_(list(ends)), col(WorkState.status) != "offline")
    for stretch in db.exec(query).all():
        end = min(as_utc(stretch.ended_at) if stretch.ended_at else ends[stretch.session_id], ends[stretch.session_id])
        begin = max(as_utc(stretch.started_at), start)
        _spread(seconds[where[stretch.session_id]][stretch.status.value], starts, step, begin, end)
        _spread(covered[stretch.session_id], starts, step, begin, end)
    for session in sessions:
        logged_in = [0.0] * count
        _spread(logged_in, starts, step, max(as_utc(session.created_at), start), ends[session.id])
        offline = seconds[where[session.id]]["offline"]
        for index, total in enumerate(logged_in):
            offline[index] += max(0.0, total - covered[session.id][index])
    return Timeline(starts, seconds)
