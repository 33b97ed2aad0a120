"""The sessions' scheduled jobs: re-validate live sessions, end idle and expired ones, prune throttling rows."""

import logging

from apscheduler.schedulers.base import BaseScheduler
from sqlalchemy import Engine

from gateway.clock import Clock
from gateway.db import session_scope
from gateway.sessions import throttle
from gateway.sessions.login import LoginServices
from gateway.sessions.revalidation import revalidate
from gateway.sessions.service import end_idle_and_expired
from gateway.settings import Settings

log = logging.getLogger(__name__)


def register(
    scheduler: BaseScheduler, engine: Engine, services: LoginServices, settings: Settings, clock: Clock
) -> None:
    def revalidate_sessions() -> None:
        report = revalidate(engine, services.directory, services.authority, services.revocation, clock())
        if report.ended:
            log.info("re-validation ended %d of %d sessions", report.ended, report.checked)

    def sweep() -> None:
        with session_scope(engine) as db:
            end_idle_and_expired(db, clock())
            throttle.prune(db, clock(), services.limits)

    scheduler.add_job(
        revalidate_sessions,
        "interval",
        seconds=settings.portal.revalidate_seconds,
        id="sessions.revalidate",
        max_instances=1,
        coalesce=True,
    )
    scheduler.add_job(sweep, "interval", seconds=10, id="sessions.sweep", max_instances=1, coalesce=True)
