"""Daily and monthly figures per agent and per team, split home / on-site, from sessions and work states.

A session counts as on-site when it came from one of ``supervision.office_networks`` (its ``source_ip`` at login),
as home otherwise. Times are the overlap of each stretch with the period; a stretch still open counts up to the
session's end or ``now``. Link drops are the VPN-down alerts raised for the agent; voice drops are the dropped
callback legs the voice domain recorded; help requests are counted answered or unanswered. Satisfaction counts the
surveys sent in the period (by the session whose call they followed) and the scores replied to them: ``average_score``
over the replies, ``response_rate`` replies per survey sent.
"""

import calendar
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta

from sqlmodel import Session, col, select

from gateway.clock import as_utc
from gateway.sessions.models import HomeSession, SessionState
from gateway.sessions.service import policy_groups
from gateway.supervision.models import Alert, HelpRequest, WorkState, WorkStatus
from gateway.supervision.rules import VPN_DOWN
from gateway.supervision.settings import SupervisionSettings
from gateway.supervision.view import is_on_site, teams_of
from gateway.voice.models import CallEvent, SatisfactionSurvey, SurveyState
from policy import SupervisedTeams

VOICE_DROP_KINDS = ("dropped", "lost")


@dataclass
class Figures:
    scope: str
    """``agent`` or ``team``."""
    name: str
    location: str
    """``home`` or ``on_site``."""
    logged_in_seconds: float = 0.0
    break_seconds: float = 0.0
    sessions: int = 0
    link_drops: int = 0
    voice_drops: int = 0
    alerts: int = 0
    help_answered: int = 0
    help_unanswered: int = 0
    """Help requests raised in the period that no supervisor took (still open, or closed with the session)."""
    surveys_sent: int = 0
    surveys_answered: int = 0
    score_total: int = 0

    def add(self, other: "Figures") -> None:
        for name in COUNTED:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def average_score(self) -> float | None:
        """Mean satisfaction score of the answered surveys; None when none was answered."""
        return self.score_total / self.surveys_answered if self.surveys_answered else None

    @property
    def response_rate(self) -> float | None:
        """Share of the surveys sent that got a score; None when none was sent."""
        return self.surveys_answered / self.surveys_sent if self.surveys_sent else None


COLUMNS = [f.name for f in fields(Figures)]
COUNTED = COLUMNS[3:]
"""The figures that sum over lines (all but scope, name and location)."""


def period_bounds(period: str, day: date) -> tuple[datetime, datetime]:
    """``day``: that UTC day; ``month``: the UTC month ``day`` falls in."""
    if period == "month":
        start = datetime(day.year, day.month, 1, tzinfo=UTC)
        return start, start + timedelta(days=calendar.monthrange(day.year, day.month)[1])
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def _overlap(begin: datetime, end: datetime, start: datetime, stop: datetime) -> float:
    return max(0.0, (min(end, stop) - max(begin, start)).total_seconds())


def _count_by_login(rows: Iterable[str | None]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for login in rows:
        if login:
            counts[login] += 1
    return counts


def agent_sessions(
    db: Session, start: datetime, stop: datetime, now: datetime, teams: SupervisedTeams
) -> list[HomeSession]:
    """Agent sessions of ``teams`` that overlap the period (an open one lasts until ``now``)."""
    sessions = db.exec(
        select(HomeSession).where(
            col(HomeSession.created_at) < stop,
            HomeSession.state != SessionState.PENDING_SECOND_FACTOR,
            col(HomeSession.roles).contains("agent"),
        )
    ).all()
    return [
        s
        for s in sessions
        if as_utc(s.ended_at or now) > start and "agent" in s.role_set and teams.covers(policy_groups(s))
    ]


def report(
    db: Session,
    start: datetime,
    stop: datetime,
    settings: SupervisionSettings,
    now: datetime,
    teams: SupervisedTeams,
) -> list[Figures]:
    """Agent lines and team lines of the agents in ``teams``, each split by location, sorted by scope and name."""
    sessions = agent_sessions(db, start, stop, now, teams)
    ends = {s.id: as_utc(s.ended_at or now) for s in sessions}
    breaks: dict[str, float] = defaultdict(float)
    for stretch in db.exec(
        select(WorkState).where(col(WorkState.session_id).in_(list(ends)), WorkState.status == WorkStatus.BREAK)
    ).all():
        stretch_end = as_utc(stretch.ended_at) if stretch.ended_at else ends[stretch.session_id]
        breaks[stretch.session_id] += _overlap(as_utc(stretch.started_at), stretch_end, start, stop)
    in_period = (col(Alert.raised_at) >= start, col(Alert.raised_at) < stop)
    alerts = _count_by_login(db.exec(select(Alert.login).where(*in_period)).all())
    drops = _count_by_login(db.exec(select(Alert.login).where(*in_period, Alert.rule == VPN_DOWN)).all())
    helps = db.exec(
        select(HelpRequest.login, HelpRequest.answered_at).where(
            col(HelpRequest.requested_at) >= start, col(HelpRequest.requested_at) < stop
        )
    ).all()
    answered = _count_by_login(login for login, answered_at in helps if answered_at is not None)
    unanswered = _count_by_login(login for login, answered_at in helps if answered_at is None)
    voice = _count_by_login(
        db.exec(
            select(CallEvent.login).where(
                col(CallEvent.at) >= start, col(CallEvent.at) < stop, col(CallEvent.kind).in_(VOICE_DROP_KINDS)
            )
        ).all()
    )
    surveys: dict[str, list[SatisfactionSurvey]] = defaultdict(list)
    for survey in db.exec(
        select(SatisfactionSurvey).where(
            col(SatisfactionSurvey.session_id).in_(list(ends)),
            SatisfactionSurvey.state == SurveyState.SENT,
            col(SatisfactionSurvey.sent_at) >= start,
            col(SatisfactionSurvey.sent_at) < stop,
        )
    ).all():
        surveys[survey.session_id].append(survey)
    lines: dict[tuple[str, str, str], Figures] = {}
    counted: set[str] = set()
    for session in sessions:
        location = "on_site" if is_on_site(session.source_ip, settings) else "home"
        figures = Figures("agent", session.login, location)
        figures.logged_in_seconds = _overlap(as_utc(session.created_at), ends[session.id], start, stop)
        figures.break_seconds = breaks[session.id]
        figures.sessions = 1 if as_utc(session.created_at) >= start else 0
        for survey in surveys[session.id]:
            figures.surveys_sent += 1
            if survey.score is not None:
                figures.surveys_answered += 1
                figures.score_total += survey.score
        if session.login not in counted:  # per-login counts are given once, to the agent's first session line
            counted.add(session.login)
            figures.link_drops, figures.voice_drops = drops[session.login], voice[session.login]
            figures.alerts = alerts[session.login]
            figures.help_answered, figures.help_unanswered = answered[session.login], unanswered[session.login]
        for scope, name in [("agent", session.login)] + [("team", t) for t in teams_of(session, settings.team_groups)]:
            lines.setdefault((scope, name, location), Figures(scope, name, location)).add(figures)
    return [lines[key] for key in sorted(lines)]
