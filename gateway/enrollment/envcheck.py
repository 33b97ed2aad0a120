"""The home-environment check: runs, what the server measures on its side, and the stored result.

A run belongs to one applicant and one open application. Transfers add to the run's counters with an atomic UPDATE
(written after the bytes moved, in their own transaction); the result is judged once and filed as evidence.
"""

import json
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlmodel import Session, col

from gateway.audit.service import record
from gateway.enrollment.envcheck_judge import ServerView, failed_checks, judge
from gateway.enrollment.errors import EnvcheckRefused
from gateway.enrollment.evidence import add_evidence
from gateway.enrollment.models import Application, ApplicationState, EnvcheckRun, EvidenceKind
from gateway.enrollment.service import latest_application
from gateway.enrollment.settings import EnrollmentSettings
from gateway.errors import NotFound

CHUNK = 64 * 1024
RUN_TRANSFERS = 4
"""How many full-size transfers each way one run may make."""


def start_run(db: Session, login: str, now: datetime) -> EnvcheckRun:
    application = latest_application(db, login)
    if application is None or application.state is not ApplicationState.OPEN:
        raise EnvcheckRefused("apply first: the environment check belongs to an open application")
    run = EnvcheckRun(id=uuid.uuid4().hex, application_id=application.id or 0, login=login, started_at=now)
    db.add(run)
    db.flush()
    return run


def open_run(db: Session, run_id: str, login: str) -> EnvcheckRun:
    """The caller's own run that has not been submitted yet."""
    run = db.get(EnvcheckRun, run_id)
    if run is None or run.login != login or run.submitted_at is not None:
        raise NotFound("no environment check under way with this id; start again")
    return run


def checked_size(requested: int, limit: int, already: int = 0) -> int:
    """One transfer is at most ``limit`` bytes, and a run moves at most a few of them each way."""
    if not 1 <= requested <= limit:
        raise EnvcheckRefused(f"a transfer is between 1 byte and {limit} bytes")
    if already + requested > RUN_TRANSFERS * limit:
        raise EnvcheckRefused("this check has moved enough data; start a new one")
    return requested


def add_download(db: Session, run_id: str, byte_count: int, seconds: float) -> None:
    db.execute(
        update(EnvcheckRun)
        .where(col(EnvcheckRun.id) == run_id)
        .values(
            download_bytes=EnvcheckRun.download_bytes + byte_count,
            download_seconds=EnvcheckRun.download_seconds + seconds,
        )
    )


def add_upload(db: Session, run: EnvcheckRun, byte_count: int, seconds: float, limit: int) -> None:
    checked_size(byte_count, limit, run.upload_bytes)
    run.upload_bytes += byte_count
    run.upload_seconds += seconds
    db.add(run)
    db.flush()


def add_round_trip(db: Session, run: EnvcheckRun) -> None:
    """Note when a probe arrived (wall clock: the probes of one run may reach different nodes)."""
    arrivals = json.loads(run.ping_arrivals)
    if len(arrivals) >= 100:
        raise EnvcheckRefused("enough round trips for one check")
    run.ping_arrivals = json.dumps([*arrivals, time.time()])
    db.add(run)
    db.flush()


def forget_stale_runs(db: Session, now: datetime, older_than: timedelta) -> int:
    """Runs started and never submitted hold nothing anyone needs."""
    stale = delete(EnvcheckRun).where(
        col(EnvcheckRun.submitted_at).is_(None), col(EnvcheckRun.started_at) < now - older_than
    )
    return int(db.execute(stale).rowcount or 0)  # type: ignore[attr-defined]


def submit(
    db: Session, run: EnvcheckRun, report: dict[str, Any], *, settings: EnrollmentSettings, now: datetime
) -> dict[str, Any]:
    """Judge the run and file it as evidence on the application; a run is submitted once."""
    application = db.get(Application, run.application_id)
    if application is None or application.state is not ApplicationState.OPEN:
        raise EnvcheckRefused("the application is no longer open")
    server = ServerView(
        run.download_bytes, run.download_seconds, run.upload_bytes, run.upload_seconds, json.loads(run.ping_arrivals)
    )
    result = {"measured_at": now.isoformat(), "run": run.id, **judge(report, server, settings.thresholds)}
    failed = failed_checks(result)
    run.submitted_at = now
    db.add(run)
    add_evidence(
        db,
        application,
        settings.envcheck_stage,
        f"environment-check-{now:%Y%m%d-%H%M%S}.json",
        json.dumps(result, ensure_ascii=False, sort_keys=True).encode(),
        settings=settings,
        actor=run.login,
        now=now,
        kind=EvidenceKind.ENVIRONMENT_CHECK,
        summary="passed" if not failed else "failed: " + ", ".join(failed),
    )
    record(
        db,
        actor=run.login,
        action="enrollment.envcheck",
        target=run.login,
        outcome="passed" if not failed else "failed",
        detail={"application": application.id, "run": run.id, "failed": failed},
        clock=lambda: now,
    )
    return result
