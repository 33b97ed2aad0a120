"""Daily and monthly reports: a page with charts (Chart.js, from the gateway's origin) and the same figures as CSV.

A date or period the page cannot read is answered on the page itself, translated, with what was typed kept in the
form (422), never with an error page.
"""

import csv
import io
from dataclasses import asdict
from datetime import date, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from gateway.deps import ClockDep, DbSession
from gateway.sessions.deps import SupervisorSession
from gateway.sessions.models import HomeSession
from gateway.supervision.deps import SupervisionSettingsDep
from gateway.supervision.errors import BadDate, BadPeriod
from gateway.supervision.reports import COLUMNS, Figures, period_bounds, report
from gateway.supervision.scope import supervisor_scope
from gateway.supervision.timeline import LOCATIONS, STATES, Timeline, state_timeline
from gateway.web.pages import reason_message, render

router = APIRouter(tags=["supervision"])
STEPS = {"15": timedelta(minutes=15), "30": timedelta(minutes=30)}
"""A day's chart in 15- or 30-minute steps; a month's in days."""


def _day(period: str, day: str | None, today: date) -> date:
    if not day:
        return today
    try:
        return date.fromisoformat(f"{day}-01" if period == "month" and len(day) == 7 else day)  # a month: YYYY-MM too
    except ValueError:
        raise BadDate(f"{day!r} is not a date: give it as YYYY-MM-DD (a month: any day in it)") from None


def _bounds(period: str, day: str | None, today: date) -> tuple[str, date, datetime, datetime]:
    """The period's label, the chosen day, and its UTC bounds."""
    if period not in ("day", "month"):
        raise BadPeriod("period is day or month")
    chosen = _day(period, day, today)
    start, stop = period_bounds(period, chosen)
    return (f"{start:%Y-%m-%d}" if period == "day" else f"{start:%Y-%m}"), chosen, start, stop


def _figures(
    db: DbSession,
    supervisor: HomeSession,
    settings: SupervisionSettingsDep,
    clock: ClockDep,
    period: str,
    day: str | None,
) -> tuple[str, list[Figures]]:
    now = clock()
    label, _chosen, start, stop = _bounds(period, day, now.date())
    return label, report(db, start, stop, settings, now, supervisor_scope(db, supervisor))


def _charts(lines: list[Figures], timeline: Timeline, period: str) -> dict[str, object]:
    """The charts' data for the page's script: agent seconds per state and step, home and on-site; per agent."""
    label = "%H:%M" if period == "day" else "%m-%d"
    agents = [line for line in lines if line.scope == "agent"]
    return {
        "labels": [f"{start:{label}}" for start in timeline.starts],
        "states": list(STATES),
        "series": {where: timeline.seconds[where] for where in LOCATIONS},
        "agents": [
            {"name": a.name, "location": a.location, "logged_in": a.logged_in_seconds, "break": a.break_seconds}
            for a in agents
        ],
    }


@router.get("/supervision/reports", response_class=HTMLResponse)
def reports_page(
    request: Request,
    session: SupervisorSession,
    db: DbSession,
    settings: SupervisionSettingsDep,
    clock: ClockDep,
    period: str = "day",
    day: str | None = None,
    step: str = "30",
) -> HTMLResponse:
    now = clock()
    form = {"period": period, "day": day or f"{now:%Y-%m-%d}", "step": step if step in STEPS else "30"}
    try:
        label, chosen, start, stop = _bounds(period, day, now.date())
    except (BadPeriod, BadDate) as refused:
        error = reason_message(request, refused.reason, refused.message, value=day or "")
        return render(request, "supervision_reports.html", 422, error=error, form=form, lines=[], charts=None)
    teams = supervisor_scope(db, session)
    lines = report(db, start, stop, settings, now, teams)
    interval = STEPS[form["step"]] if period == "day" else timedelta(days=1)
    timeline = state_timeline(db, start, stop, interval, settings, now, teams)
    form["day"] = f"{chosen:%Y-%m-%d}"
    charts = _charts(lines, timeline, period)
    return render(request, "supervision_reports.html", form=form, label=label, lines=lines, charts=charts)


@router.get("/supervision/reports.csv")
def reports_csv(
    session: SupervisorSession,
    db: DbSession,
    settings: SupervisionSettingsDep,
    clock: ClockDep,
    period: str = "day",
    day: str | None = None,
) -> Response:
    label, lines = _figures(db, session, settings, clock, period, day)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["period", *COLUMNS])
    writer.writeheader()
    for line in lines:
        writer.writerow({"period": label, **asdict(line)})
    headers = {"Content-Disposition": f'attachment; filename="sohogw-report-{label}.csv"'}
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)
