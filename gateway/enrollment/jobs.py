"""Enrollment's scheduled jobs: re-check reminders and the retention purge, on one interval."""

import logging
from datetime import timedelta

from apscheduler.schedulers.base import BaseScheduler
from sqlalchemy import Engine

from gateway.clock import Clock
from gateway.db import session_scope
from gateway.enrollment.envcheck import forget_stale_runs
from gateway.enrollment.settings import EnrollmentSettings
from gateway.enrollment.upkeep import purge_closed, remind_due_rechecks

log = logging.getLogger(__name__)
JOB_ID = "enrollment.upkeep"


def run_upkeep(engine: Engine, settings: EnrollmentSettings, clock: Clock) -> None:
    with session_scope(engine) as db:
        remind_due_rechecks(db, clock())
    with session_scope(engine) as db:
        purged = purge_closed(db, clock(), timedelta(days=settings.rejected_retention_days))
        forget_stale_runs(db, clock(), timedelta(days=1))
    if purged:
        log.info("purged %d closed applications past their retention", purged)


def register(scheduler: BaseScheduler, engine: Engine, settings: EnrollmentSettings, clock: Clock) -> None:
    scheduler.add_job(
        run_upkeep,
        "interval",
        args=(engine, settings, clock),
        minutes=settings.jobs_interval_minutes,
        id=JOB_ID,
        replace_existing=True,
        coalesce=True,
        max_instances=1,
    )
