"""Enrollment's background work, on the one worker contract: the agents group made to match the applications
(``membership.py``), the re-check reminders and the retention purge, and HR's CSV imports."""

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from gateway.clock import Clock
from gateway.enrollment import csv_import
from gateway.enrollment.envcheck import forget_stale_runs
from gateway.enrollment.handoff import HandOff, finish_owed_revocations
from gateway.enrollment.membership import MEMBERSHIP_CHANGED, Wanted, make_memberships_so, wanted_memberships
from gateway.enrollment.settings import EnrollmentSettings
from gateway.enrollment.upkeep import purge_closed, remind_due_rechecks
from gateway.workers.contract import Nudge, Schedule, Scope, Worker

log = logging.getLogger(__name__)
IMPORT_CHECK_MINUTES = 10


class GroupMembership(Worker[Wanted, None]):
    """At once for the logins a committed decision names; every ``membership_check_minutes`` for every managed
    person (hand edits, a directory outage). The directory is changed outside any transaction. Each pass also
    finishes the certificate revocations a withdrawal owes from a directory outage (``handoff.py``)."""

    name = "enrollment.membership"

    def __init__(self, engine: Engine, handoff: HandOff, settings: EnrollmentSettings, clock: Clock) -> None:
        self.engine, self.handoff, self.clock = engine, handoff, clock
        self.schedule = Schedule(
            interval=timedelta(minutes=settings.membership_check_minutes),
            topics=frozenset({MEMBERSHIP_CHANGED}),
            scope=Scope.CLUSTER,
        )

    def desired(self, db: Session, nudges: Sequence[Nudge]) -> Wanted:
        return wanted_memberships(db, [str(n.payload) for n in nudges] if nudges else None)

    def apply(self, desired: Wanted, observed: None) -> None:
        handoff, now = self.handoff, self.clock()
        changes = make_memberships_so(self.engine, handoff.directory, handoff.agent_group, desired, now)
        if changes:
            log.info("agents group repaired: %s", changes)
        revoked = finish_owed_revocations(self.engine, handoff, now)
        if revoked:
            log.info("revoked %d certificate(s) a withdrawal during a directory outage owed", len(revoked))


class EnrollmentUpkeep(Worker[None, None]):
    """Re-check reminders, the retention purge and stale environment-check runs; the database is its world."""

    name = "enrollment.upkeep"

    def __init__(self, settings: EnrollmentSettings, clock: Clock) -> None:
        self.retention, self.clock = timedelta(days=settings.rejected_retention_days), clock
        interval = timedelta(minutes=settings.jobs_interval_minutes)
        self.schedule = Schedule(interval=interval, scope=Scope.CLUSTER, first_pass_delay=interval)

    def desired(self, db: Session, nudges: Sequence[Nudge]) -> None:
        remind_due_rechecks(db, self.clock())
        purged = purge_closed(db, self.clock(), self.retention)
        forget_stale_runs(db, self.clock(), timedelta(days=1))
        if purged:
            log.info("purged %d closed applications past their retention", purged)

    def apply(self, desired: None, observed: None) -> None:
        return None


class CsvImport(Worker[list[csv_import.QueuedImport], None]):
    """Imports the rows of each upload once it committed (the nudge carries them); the interval pass finishes the
    imports an earlier life of the gateway was cut off in."""

    name = "enrollment.csv_import"

    def __init__(self, engine: Engine, settings: EnrollmentSettings, clock: Clock) -> None:
        self.engine, self.settings, self.clock = engine, settings, clock
        self.schedule = Schedule(
            interval=timedelta(minutes=IMPORT_CHECK_MINUTES),
            topics=frozenset({csv_import.IMPORT_QUEUED}),
            interval_covers_nudges=False,  # an upload's rows exist only in its nudge
        )

    def desired(self, db: Session, nudges: Sequence[Nudge]) -> list[csv_import.QueuedImport]:
        if not nudges:
            csv_import.close_interrupted(db, self.clock())
        return [nudge.payload for nudge in nudges]

    def apply(self, desired: list[csv_import.QueuedImport], observed: None) -> None:
        for queued in desired:
            csv_import.run_import(
                self.engine,
                queued.import_id,
                queued.rows,
                queued.handoff,
                settings=self.settings,
                actor=queued.actor,
                clock=self.clock,
            )


def enrollment_workers(
    engine: Engine, settings: EnrollmentSettings, clock: Clock, handoff: HandOff
) -> list[Worker[Any, Any]]:
    return [
        GroupMembership(engine, handoff, settings, clock),
        EnrollmentUpkeep(settings, clock),
        CsvImport(engine, settings, clock),
    ]
