"""Daily and monthly reports: an HTML page with charts and the same figures as CSV."""

import csv
import io
from dataclasses import asdict
from datetime import date

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from gateway.deps import ClockDep, DbSession
from gateway.errors import GatewayError
from gateway.sessions.deps import SupervisorSession
from gateway.supervision.deps import SupervisionSettingsDep
from gateway.supervision.reports import COLUMNS, Figures, period_bounds, report
from gateway.web.pages import render

router = APIRouter(tags=["supervision"])


class BadPeriod(GatewayError):
    status_code = 422
    reason = "bad_period"


def _day(period: str, day: str | None, today: date) -> date:
    if not day:
        return today
    try:
        return date.fromisoformat(day if period == "day" else f"{day[:7]}-01")
    except ValueError:
        raise BadPeriod("give the date as YYYY-MM-DD (day) or YYYY-MM (month)") from None


def _figures(
    db: DbSession, settings: SupervisionSettingsDep, clock: ClockDep, period: str, day: str | None
) -> tuple[str, list[Figures]]:
    if period not in ("day", "month"):
        raise BadPeriod("period is day or month")
    now = clock()
    start, stop = period_bounds(period, _day(period, day, now.date()))
    label = f"{start:%Y-%m-%d}" if period == "day" else f"{start:%Y-%m}"
    return label, report(db, start, stop, settings, now)


@router.get("/supervision/reports", response_class=HTMLResponse)
def reports_page(
    request: Request,
    session: SupervisorSession,
    db: DbSession,
    settings: SupervisionSettingsDep,
    clock: ClockDep,
    period: str = "day",
    day: str | None = None,
) -> HTMLResponse:
    label, lines = _figures(db, settings, clock, period, day)
    longest = max([line.logged_in_seconds for line in lines] + [1.0])
    return render(request, "supervision_reports.html", period=period, label=label, lines=lines, longest=longest)


@router.get("/supervision/reports.csv")
def reports_csv(
    session: SupervisorSession,
    db: DbSession,
    settings: SupervisionSettingsDep,
    clock: ClockDep,
    period: str = "day",
    day: str | None = None,
) -> Response:
    label, lines = _figures(db, settings, clock, period, day)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["period", *COLUMNS])
    writer.writeheader()
    for line in lines:
        writer.writerow({"period": label, **asdict(line)})
    headers = {"Content-Disposition": f'attachment; filename="sohogw-report-{label}.csv"'}
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)
