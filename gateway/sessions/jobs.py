"""The sessions' scheduled jobs: re-validate live sessions, ask the company CAs' CRLs again (and re-check every
certificate at once when one changed; audit any older CRL refused), end idle and expired ones, prune throttling
rows. Beside them runs the directory's change subscription, which re-validates the sessions a directory change
touched within seconds (``directory_changes.py``); the re-validation job is its safety net."""

import logging
import threading
from datetime import timedelta

from apscheduler.schedulers.base import BaseScheduler
from sqlalchemy import Engine

from gateway.clock import Clock
from gateway.db import session_scope
from gateway.directory import open_directory_watch
from gateway.pki.trust import record_refused_crls
from gateway.sessions import throttle
from gateway.sessions.directory_changes import (
    DirectorySubscription,
    subscription_reporter,
    touched_sessions,
    watched_containers,
)
from gateway.sessions.login import LoginServices
from gateway.sessions.revalidation import revalidate
from gateway.sessions.service import end_idle_and_expired
from gateway.settings import Settings

log = logging.getLogger(__name__)


def register(
    scheduler: BaseScheduler, engine: Engine, services: LoginServices, settings: Settings, clock: Clock
) -> DirectorySubscription | None:
    """Schedule the jobs and start the directory's change subscription (returned, to be stopped at shutdown; None
    for a directory without one)."""
    grace = timedelta(minutes=settings.portal.revocation_unknown_grace_minutes)
    judging = threading.Lock()  # the poll and the subscription never judge sessions at the same time

    def revalidate_sessions() -> None:
        with judging:
            report = revalidate(engine, services.directory, services.authority, services.revocation, clock(), grace)
        if report.ended:
            log.info("re-validation ended %d of %d sessions", report.ended, report.checked)

    def revalidate_changed(changed: frozenset[str] | None) -> None:
        with session_scope(engine) as db:
            touched = touched_sessions(db, changed)
        if not touched:
            return
        with judging:
            report = revalidate(
                engine, services.directory, services.authority, services.revocation, clock(), grace, only=touched
            )
        log.info("directory change: re-validation ended %d of %d touched sessions", report.ended, report.checked)

    def refresh_company_crls() -> None:
        now = clock()
        # Every held CRL, not only those past their max-age: a CRL fetched by a sign-in 14 s before this run would
        # otherwise wait for the next run, and a revocation could take two intervals. Unchanged costs a 304.
        changed = services.revocation.refresh(now, everything=True)
        # The older CRLs this run refused, and those sign-ins and re-validations refused since the last run.
        refused = services.revocation.take_rollbacks()
        if refused:
            with session_scope(engine) as db:
                record_refused_crls(db, refused)
        if changed:
            report = revalidate(engine, None, services.authority, services.revocation, now, grace)
            log.info(
                "company CRL changed (%s): %d of %d sessions ended", ", ".join(changed), report.ended, report.checked
            )

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
    scheduler.add_job(
        refresh_company_crls,
        "interval",
        seconds=settings.ca.company_crl_refresh_seconds,
        id="sessions.company_crls",
        max_instances=1,
        coalesce=True,
    )
    scheduler.add_job(sweep, "interval", seconds=10, id="sessions.sweep", max_instances=1, coalesce=True)
    watch = open_directory_watch(
        services.directory,
        lambda: watched_containers(engine),
        revalidate_changed,
        subscription_reporter(engine, services.node),
    )
    if watch is None:
        return None
    subscription = DirectorySubscription(watch)
    subscription.start()
    return subscription
