"""Enrollment's scheduled jobs: re-check reminders and the retention purge on one interval, and the repair of the
agents group (``membership.py``) on a shorter one."""

import logging
from datetime import timedelta

from apscheduler.schedulers.base import BaseScheduler
from sqlalchemy import Engine

from gateway.clock import Clock
from gateway.db import session_scope
from gateway.directory import Directory
from gateway.enrollment.envcheck import forget_stale_runs
from gateway.enrollment.membership import reconcile_memberships
from gateway.enrollment.settings import EnrollmentSettings
from gateway.enrollment.upkeep import purge_closed, remind_due_rechecks

log = logging.getLogger(__name__)
JOB_ID = "enrollment.upkeep"
MEMBERSHIP_JOB_ID = "enrollment.membership"


def run_upkeep(engine: Engine, settings: EnrollmentSettings, clock: Clock) -> None:
    with session_scope(engine) as db:
        remind_due_rechecks(db, clock())
    with session_scope(engine) as db:
        purged = purge_closed(db, clock(), timedelta(days=settings.rejected_retention_days))
        forget_stale_runs(db, clock(), timedelta(days=1))
    if purged:
        log.info("purged %d closed applications past their retention", purged)


def repair_memberships(engine: Engine, directory: Directory, settings: EnrollmentSettings, clock: Clock) -> None:
    with session_scope(engine) as db:
        changes = reconcile_memberships(db, directory, settings.agent_group, clock())
    if changes:
        log.info("agents group repaired: %s", changes)


def register(
    scheduler: BaseScheduler,
    engine: Engine,
    settings: EnrollmentSettings,
    clock: Clock,
    directory: Directory | None = None,
) -> None:
    """Schedule the upkeep, and the membership repair when the app passes the ``directory`` decisions act on."""
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
    if directory is None:
        log.warning("enrollment jobs registered without a directory: the agents group is not repaired on schedule")
        return
    scheduler.add_job(
        repair_memberships,
        "interval",
        args=(engine, directory, settings, clock),
        minutes=settings.membership_check_minutes,
        id=MEMBERSHIP_JOB_ID,
        next_run_time=clock(),
        replace_existing=True,
        coalesce=True,
        max_instances=1,
    )
