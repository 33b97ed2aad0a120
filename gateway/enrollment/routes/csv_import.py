"""HR's CSV import: upload, then a report page that shows progress until the last row is done."""

import json
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from gateway.deps import ClockDep, DbSession, RowId
from gateway.enrollment import csv_import
from gateway.enrollment.deps import HandOffDep
from gateway.enrollment.errors import InvalidApplication
from gateway.errors import GatewayError
from gateway.sessions.deps import CheckedForm, HrSession
from gateway.web.forms import AuditedAs, attempt, refused_page, stored_refusal_message
from gateway.web.pages import render

router = APIRouter(tags=["enrollment"])
MAX_CSV_BYTES = 2 * 1024 * 1024


@router.get("/hr/enrollment-import", response_class=HTMLResponse)
def import_page(request: Request, hr: HrSession) -> HTMLResponse:
    return render(request, "enrollment_import.html", columns=csv_import.COLUMNS, run=None, problems=[])


@router.post("/hr/enrollment-import")
def upload(
    request: Request,
    hr: HrSession,
    form: CheckedForm,
    db: DbSession,
    clock: ClockDep,
    handoff: HandOffDep,
) -> Response:
    """Rows are checked and imported by the ``enrollment.csv_import`` worker once this upload commits, each in its
    own transaction (see ``run_import``). A file that cannot be read at all is refused on the import page itself,
    saying what is wrong with it."""
    outcome = attempt(db, lambda: _rows(form.get("file")), AuditedAs(hr.login, "enrollment.import", hr.source_ip))
    if isinstance(outcome, GatewayError):
        return refused_page(request, "enrollment_import.html", outcome, form, columns=csv_import.COLUMNS, run=None)
    rows = outcome
    run = csv_import.begin_import(db, len(rows), actor=hr.login, now=clock())
    csv_import.queue_import(db, run, rows, handoff)
    return RedirectResponse(f"/hr/enrollment-import/{run.id}", status_code=303)


def _rows(upload: object) -> csv_import.Rows:
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise InvalidApplication("choose a CSV file", key="csv_no_file")
    raw = upload.file.read(MAX_CSV_BYTES + 1)
    if len(raw) > MAX_CSV_BYTES:
        limit = MAX_CSV_BYTES // 1024
        raise InvalidApplication(f"the file is larger than {limit} KiB; split it", key="csv_too_large", kib=limit)
    try:
        return csv_import.parse_rows(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidApplication("the file is not UTF-8 text; save it as CSV UTF-8", key="csv_not_utf8") from None


@dataclass(frozen=True, slots=True)
class ShownProblem:
    """A refused row as the report shows it: its line, the column to correct (None: the whole row), and why, in
    the reader's language."""

    line: int | None
    column: str | None
    text: str


def _shown(request: Request, problem: dict[str, object]) -> ShownProblem:
    """A stored problem in the reader's language; a problem stored before keys were kept shows its English."""
    line, column, values = problem.get("line"), problem.get("column"), problem.get("values")
    text = stored_refusal_message(
        request,
        str(problem.get("key") or ""),
        values if isinstance(values, dict) else {},
        str(problem.get("refusal") or ""),
        str(problem.get("message") or problem.get("reason") or ""),
    )
    return ShownProblem(line if isinstance(line, int) else None, column if isinstance(column, str) else None, text)


@router.get("/hr/enrollment-import/{import_id}", response_class=HTMLResponse)
def report(request: Request, import_id: RowId, hr: HrSession, db: DbSession) -> HTMLResponse:
    run = csv_import.get_import(db, import_id)
    problems = [_shown(request, problem) for problem in json.loads(run.problems)]
    return render(request, "enrollment_import.html", columns=csv_import.COLUMNS, run=run, problems=problems)
