"""Report figures from seeded sessions, work states, alerts and voice drops (SQLite and PostgreSQL)."""

from datetime import UTC, date, datetime, timedelta

from sqlmodel import Session

from gateway.supervision.models import Alert, WorkStatus
from gateway.supervision.reports import Figures, period_bounds, report
from gateway.supervision.settings import SupervisionSettings
from gateway.supervision.state import set_work_state
from gateway.supervision.timeline import state_timeline
from gateway.voice.models import CallEvent
from tests.gateway.supervision.conftest import EVERY_TEAM, add_session

DAY = date(2026, 11, 25)
NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
SETTINGS = SupervisionSettings(office_networks=["10.20.0.0/16"], team_groups=["Team-North", "Team-South"])


def at(hour: float, day: int = 25) -> datetime:
    return datetime(2026, 11, day, tzinfo=UTC) + timedelta(hours=hour)


# login, source address, start, end, [(state, reason, from, to or None = until the session ends)]
SEEDS = [
    (
        "agent1",
        "198.51.100.7",
        at(8),
        at(12),
        [
            ("ready", "", at(8), at(10)),
            ("break", "lunch", at(10), at(10.5)),
            ("ready", "", at(10.5), at(11.75)),
            ("break", "rest", at(11.75), None),
        ],
    ),
    ("agent1", "10.20.1.5", at(13), at(17), [("ready", "", at(13), None)]),
    ("agent2", "198.51.100.8", at(22, 24), at(2), [("break", "rest", at(23, 24), at(1))]),
]
ALERTS = [("vpn_down", "agent1", at(9)), ("break_too_long", "agent1", at(10.4)), ("vpn_down", "agent2", at(23, 24))]
VOICE_DROPS = [("agent2", at(1)), ("agent2", at(23, 24))]


def _seed(db: Session) -> None:
    for login, source, start, end, stretches in SEEDS:
        session = add_session(db, login, created_at=start, source_ip=source)
        for index, (state, reason, begin, until) in enumerate(stretches):
            set_work_state(db, session, WorkStatus(state), reason, source="portal", now=begin)
            following = stretches[index + 1][2] if index + 1 < len(stretches) else None
            if until is not None and until != following:
                set_work_state(db, session, WorkStatus.OFFLINE, "", source="portal", now=until)
        session.state, session.ended_at = "ended", end  # type: ignore[assignment]
        db.add(session)
    for rule, login, raised in ALERTS:
        db.add(Alert(rule=rule, subject=login, login=login, message="m", raised_at=raised))
    for login, moment in VOICE_DROPS:
        db.add(CallEvent(session_id="x", person_id=f"test:{login}", login=login, kind="dropped", at=moment))
    db.flush()


def _overlap(begin: datetime, end: datetime, start: datetime, stop: datetime) -> float:
    return max(0.0, (min(end, stop) - max(begin, start)).total_seconds())


def _expected(start: datetime, stop: datetime) -> dict[tuple[str, str], Figures]:
    """The same figures worked out directly from the seeds."""
    lines: dict[tuple[str, str], Figures] = {}
    counted: set[str] = set()
    for login, source, begin, end, stretches in SEEDS:
        if _overlap(begin, end, start, stop) == 0:
            continue
        location = "on_site" if source.startswith("10.20.") else "home"
        line = lines.setdefault((login, location), Figures("agent", login, location))
        line.logged_in_seconds += _overlap(begin, end, start, stop)
        line.break_seconds += sum(_overlap(b, u or end, start, stop) for s, _, b, u in stretches if s == "break")
        line.sessions += begin >= start
        if login not in counted:
            counted.add(login)
            line.alerts = sum(1 for _, who, t in ALERTS if who == login and start <= t < stop)
            line.link_drops = sum(1 for r, who, t in ALERTS if r == "vpn_down" and who == login and start <= t < stop)
            line.voice_drops = sum(1 for who, t in VOICE_DROPS if who == login and start <= t < stop)
    return lines


def test_daily_report_per_agent_splits_home_and_on_site_and_clips_to_the_day(db: Session) -> None:
    _seed(db)
    start, stop = period_bounds("day", DAY)
    lines = report(db, start, stop, SETTINGS, NOW, EVERY_TEAM)
    agents = {(line.name, line.location): line for line in lines if line.scope == "agent"}
    assert agents == _expected(start, stop)
    assert agents[("agent2", "home")].logged_in_seconds == 2 * 3600  # only the part after midnight
    assert agents[("agent1", "home")].break_seconds == 45 * 60  # 30 min lunch + the open 15 min rest


def test_team_lines_add_up_their_agents_and_the_month_includes_the_day_before(db: Session) -> None:
    _seed(db)
    start, stop = period_bounds("month", DAY)
    assert (start, stop) == (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    lines = report(db, start, stop, SETTINGS, NOW, EVERY_TEAM)
    agents = {(line.name, line.location): line for line in lines if line.scope == "agent"}
    teams = {(line.name, line.location): line for line in lines if line.scope == "team"}
    assert agents == _expected(start, stop)
    assert agents[("agent2", "home")].logged_in_seconds == 4 * 3600
    assert teams[("Team-North", "home")].logged_in_seconds == agents[("agent1", "home")].logged_in_seconds
    assert teams[("Team-North", "on_site")].sessions == 1
    assert teams[("Team-South", "home")].voice_drops == 2 and teams[("Team-South", "home")].link_drops == 1
    assert not any(name == "SOHO-Agents" for name, _ in teams)  # only the configured team groups


def test_state_timeline_splits_agent_time_by_state_step_and_location(db: Session) -> None:
    _seed(db)
    start, stop = period_bounds("day", DAY)
    timeline = state_timeline(db, start, stop, timedelta(minutes=30), SETTINGS, NOW, EVERY_TEAM)
    assert len(timeline.starts) == 48 and timeline.starts[1] == at(0.5)

    def step(where: str, hour: float) -> dict[str, float]:
        index = timeline.starts.index(at(hour))
        return {state: seconds[index] for state, seconds in timeline.seconds[where].items() if seconds[index]}

    assert step("home", 0) == {"break": 1800}  # agent2's night break, from the evening before
    assert step("home", 1) == {"offline": 1800}  # logged in, no state set: "not ready"
    assert step("home", 2) == {}
    assert step("home", 8) == {"ready": 1800}
    assert step("home", 10) == {"break": 1800}
    assert step("home", 11.5) == {"ready": 900, "break": 900}
    assert step("on_site", 13) == {"ready": 1800} and step("home", 13) == {}
    home_total = sum(sum(seconds) for seconds in timeline.seconds["home"].values())
    assert home_total == (2 + 4) * 3600  # agent2 00:00-02:00 and agent1 08:00-12:00, every second in one state
