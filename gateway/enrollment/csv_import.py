"""Applications in bulk from a CSV file, row by row, with progress and a report of every refused row.

Columns (header line required, order free, UTF-8, a BOM from Excel is fine): ``login`` (required) and
``callback_number`` (optional; E.164, or national for the configured region). Each row is its own transaction: a
refused row leaves nothing behind, and the good rows are imported. A refused row's problem is stored as its line,
the column it concerns, and the refusal's catalog key and values (with the English message for the log), so the
report shows it in the reader's language (``problem_text``).
"""

import csv
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from gateway.audit.service import record
from gateway.clock import Clock
from gateway.db import session_scope
from gateway.enrollment.errors import InvalidApplication
from gateway.enrollment.handoff import HandOff
from gateway.enrollment.models import ImportRun
from gateway.enrollment.service import start_application
from gateway.enrollment.settings import EnrollmentSettings
from gateway.errors import GatewayError, NotFound
from gateway.events import nudge_after_commit

log = logging.getLogger(__name__)
COLUMNS = ("login", "callback_number")
MAX_ROWS = 5000
IMPORT_QUEUED = "enrollment.import_queued"
INTERRUPTED_AFTER = timedelta(hours=1)
"""An import still unfinished this long after it started lost its rows to a restart (5,000 rows take minutes)."""
COLUMN_OF_REFUSAL = {
    "application_no_login": "login",
    "application_unknown_login": "login",
    "application_exists": "login",
    "phone_invalid": "callback_number",
}
"""The column a row's refusal (by catalog key) is about, so the report names the field to correct."""

Rows = list[tuple[int, dict[str, str] | InvalidApplication]]
"""Each data row with its line number: the row's fields, or why it cannot be read."""


def parse_rows(text: str) -> Rows:
    """Each data row with its line number: the row's fields, or the refusal saying why it cannot be read."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        header = [name.strip().lower() for name in next(reader)]
    except StopIteration:
        raise InvalidApplication("the file is empty", key="csv_empty") from None
    missing = [c for c in ("login",) if c not in header]
    unknown = [c for c in header if c not in COLUMNS]
    if missing or unknown:
        raise InvalidApplication(
            f"line 1: the columns are {', '.join(COLUMNS)} (login required); got {', '.join(header)}",
            key="csv_columns",
            expected=", ".join(COLUMNS),
            found=", ".join(header) or "—",
            missing=", ".join(missing) or "—",
            unknown=", ".join(unknown) or "—",
        )
    rows: Rows = []
    for line, fields in _numbered(reader):
        if not any(f.strip() for f in fields):
            continue
        if len(fields) != len(header):
            message = f"expected {len(header)} fields, found {len(fields)}"
            rows.append(
                (line, InvalidApplication(message, key="csv_row_fields", expected=len(header), found=len(fields)))
            )
        else:
            rows.append((line, dict(zip(header, fields, strict=True))))
        if len(rows) > MAX_ROWS:
            raise InvalidApplication(
                f"more than {MAX_ROWS} rows; split the file", key="csv_too_many_rows", rows=MAX_ROWS
            )
    return rows


def _numbered(reader: Any) -> Iterator[tuple[int, list[str]]]:
    """Rows with the line they end on (a quoted field may span lines); a malformed row names its line."""
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise InvalidApplication(
                f"line {reader.line_num}: {error}", key="csv_malformed", line=reader.line_num
            ) from None
        yield reader.line_num, fields


def begin_import(db: Session, rows: int, *, actor: str, now: datetime) -> ImportRun:
    run = ImportRun(started_by=actor, started_at=now, total_rows=rows)
    db.add(run)
    db.flush()
    record(
        db,
        actor=actor,
        action="enrollment.import",
        outcome="started",
        detail={"import": run.id, "rows": rows},
        clock=lambda: now,
    )
    return run


def get_import(db: Session, import_id: int) -> ImportRun:
    run = db.get(ImportRun, import_id)
    if run is None:
        raise NotFound(f"no import {import_id}")
    return run


def row_problem(line: int | None, error: GatewayError) -> dict[str, object]:
    """What the report keeps of a refused row: the line, the column it concerns (None: the whole row), and the
    refusal as its catalog key and values, its reason code and its English message (for the log and the API)."""
    return {
        "line": line,
        "column": COLUMN_OF_REFUSAL.get(error.key),
        "key": error.key,
        "values": {name: str(value) for name, value in error.values.items()},
        "refusal": error.reason,
        "message": error.message,
    }


def _count(db: Session, import_id: int, imported: bool, problem: dict[str, object] | None = None) -> None:
    run = get_import(db, import_id)
    run.processed_rows += 1
    run.imported += int(imported)
    if problem is not None:
        run.problems = json.dumps([*json.loads(run.problems), problem], ensure_ascii=False)
    db.add(run)


@dataclass(frozen=True)
class QueuedImport:
    """An upload whose run row committed: the rows to import, as whom, with what hand-off (``IMPORT_QUEUED``)."""

    import_id: int
    rows: Rows
    handoff: HandOff
    actor: str


def queue_import(db: Session, run: ImportRun, rows: Rows, handoff: HandOff) -> None:
    """Hand the rows to the ``enrollment.csv_import`` worker once the run row commits (dropped on rollback)."""
    nudge_after_commit(db, IMPORT_QUEUED, QueuedImport(run.id or 0, rows, handoff, run.started_by))


def run_import(
    engine: Engine,
    import_id: int,
    rows: Rows,
    handoff: HandOff,
    *,
    settings: EnrollmentSettings,
    actor: str,
    clock: Clock,
) -> None:
    """Import the rows, committing each on its own so progress shows and one bad row spoils nothing else.
    Runs in the worker's thread after the upload committed, so it opens its own transactions.

    A row is counted in the transaction that imports it (or, refused, in one of its own), so the run's
    ``processed_rows`` says how many rows are done: a pass retried after a failure part-way (the worker runner
    replays the nudge) resumes after them, and a finished run is not imported again, instead of each row's outcome
    being repeated as a refusal ("already has an application") in HR's report."""
    with session_scope(engine) as db:
        run = get_import(db, import_id)
        if run.finished_at is not None:
            return
        done = run.processed_rows
    for line, row in rows[done:]:
        try:
            with session_scope(engine) as db:
                if isinstance(row, InvalidApplication):
                    raise row
                start_application(
                    db,
                    handoff,
                    row["login"],
                    callback_number=row.get("callback_number", ""),
                    settings=settings,
                    actor=actor,
                    now=clock(),
                )
                _count(db, import_id, imported=True)
        except GatewayError as error:
            with session_scope(engine) as db:
                _count(db, import_id, imported=False, problem=row_problem(line, error))
        except Exception:  # an unforeseen failure is this row's problem; the rest of the file still imports
            log.exception("enrollment import %s: line %s failed", import_id, line)
            with session_scope(engine) as db:
                internal = GatewayError("internal error; see the gateway log", key="csv_row_internal")
                _count(db, import_id, imported=False, problem=row_problem(line, internal))
    with session_scope(engine) as db:
        run = get_import(db, import_id)
        run.finished_at = clock()
        db.add(run)
        record(
            db,
            actor=actor,
            action="enrollment.import",
            outcome="finished",
            detail={"import": import_id, "imported": run.imported, "refused": len(json.loads(run.problems))},
            clock=clock,
        )
    log.info("enrollment import %s finished", import_id)


def close_interrupted(db: Session, now: datetime) -> int:
    """Finish the imports a restart cut short (their rows were in the memory of a process that is gone), so HR's
    report stops showing progress and says how far it got; audited like a finished import."""
    stale = db.exec(
        select(ImportRun).where(
            col(ImportRun.finished_at).is_(None), col(ImportRun.started_at) < now - INTERRUPTED_AFTER
        )
    ).all()
    for run in stale:
        run.finished_at = now
        interrupted = GatewayError(
            f"interrupted after {run.processed_rows} of {run.total_rows} rows; upload the rest again",
            key="csv_interrupted",
            processed=run.processed_rows,
            total=run.total_rows,
        )
        problem = row_problem(None, interrupted)
        run.problems = json.dumps([*json.loads(run.problems), problem], ensure_ascii=False)
        db.add(run)
        record(
            db,
            actor="system",
            action="enrollment.import",
            outcome="interrupted",
            detail={"import": run.id, "imported": run.imported, "processed": run.processed_rows},
            clock=lambda: now,
        )
    return len(stale)
