"""The audit's background work: write the counts of folded refusals whose window has passed
(``gateway.audit.folding``). Every 10 s, so a count waits at most its one-minute window and ten seconds for its row;
at shutdown every count still held is written."""

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import Engine
from sqlmodel import Session

from gateway.audit.folding import RefusalFolder, flush_due
from gateway.clock import Clock
from gateway.workers.contract import Nudge, Schedule, Worker


class FoldedRefusalFlush(Worker[None, None]):
    """This node's folder is in its memory: every node flushes its own."""

    name = "audit.fold_flush"
    schedule = Schedule(interval=timedelta(seconds=10))

    def __init__(self, engine: Engine, folder: RefusalFolder, clock: Clock) -> None:
        self.engine, self.folder, self.clock = engine, folder, clock

    def desired(self, db: Session, nudges: Sequence[Nudge]) -> None:
        return None

    def apply(self, desired: None, observed: None) -> None:
        flush_due(self.engine, self.folder, self.clock())

    def stop(self) -> None:
        flush_due(self.engine, self.folder, self.clock(), everything=True)
