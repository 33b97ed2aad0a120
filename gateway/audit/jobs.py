"""The audit's scheduled job: write the counts of folded refusals whose window has passed (``gateway.audit.folding``).

Every 10 s, so a count waits at most its one-minute window and ten seconds for its row.
"""

from collections.abc import Callable

from apscheduler.schedulers.base import BaseScheduler
from sqlalchemy import Engine

from gateway.audit.folding import RefusalFolder, flush_due
from gateway.clock import Clock


def register(scheduler: BaseScheduler, engine: Engine, folder: RefusalFolder, clock: Clock) -> Callable[[], None]:
    """Register the job; return what the app calls at shutdown to write every count still held."""
    scheduler.add_job(
        lambda: flush_due(engine, folder, clock()),
        "interval",
        seconds=10,
        id="audit.fold_flush",
        max_instances=1,
        coalesce=True,
    )
    return lambda: flush_due(engine, folder, clock(), everything=True)
