"""The seats' scheduled jobs: end seats past their limits, and keep the pool matching the leases."""

from apscheduler.schedulers.base import BaseScheduler

from gateway.seats.broker import SeatBroker

ENFORCE_EVERY_SECONDS = 5
RECONCILE_EVERY_SECONDS = 3
RECORDINGS_EVERY_SECONDS = 5


def register(scheduler: BaseScheduler, broker: SeatBroker) -> None:
    """Idle, maximum length, unreconnected and orphaned seats (`enforce_limits`); dead, orphaned and
    missing warm seats (`reconcile`); screen recordings started, stopped, sealed and purged
    (`reconcile_recordings`). The broker carries the engine and the injected clock."""
    scheduler.add_job(
        broker.enforce_limits,
        "interval",
        seconds=ENFORCE_EVERY_SECONDS,
        id="seats.enforce",
        max_instances=1,
        coalesce=True,
    )
    scheduler.add_job(
        broker.reconcile,
        "interval",
        seconds=RECONCILE_EVERY_SECONDS,
        id="seats.reconcile",
        max_instances=1,
        coalesce=True,
    )
    scheduler.add_job(
        broker.reconcile_recordings,
        "interval",
        seconds=RECORDINGS_EVERY_SECONDS,
        id="seats.recordings",
        max_instances=1,
        coalesce=True,
    )
