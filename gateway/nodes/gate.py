"""The cluster gate: a cluster-scope worker's interval pass runs on exactly one node per interval.

Each worker has one ``worker_schedule`` row. A node claims the pass by reading the row ``FOR UPDATE SKIP LOCKED``
where ``next_run_at`` has come, moving ``next_run_at`` on by one interval and committing, all before the pass runs:
a second node at the same moment either skips the locked row or, once the first commits, finds it not yet due. So a
pass never runs twice; and as every live node asks once per interval, it never runs zero times while one node lives.
``next_run_at`` advances from the slot it was due at, not from the moment of the claim, so the passes keep their
period however the nodes' own timers drift; an interval nobody asked for (all nodes were down) is skipped, not
caught up. A node that dies during a claimed pass loses that one pass; the next interval's runs as usual.

Each node's timer asks about once per interval and may fire a few milliseconds before the pass is due: a claim that
early (``TIMER_SLACK`` of the interval) is granted, so the node whose timer comes first keeps taking the passes
instead of losing each one by a hair to the next node's timer, which would make the passes' spacing jitter.
"""

from datetime import timedelta

from sqlalchemy import Engine
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import select

from gateway.clock import Clock, as_utc, utcnow
from gateway.db import session_scope
from gateway.nodes.models import WorkerSchedule

TIMER_SLACK = 0.1


class DatabaseClusterGate:
    """``gateway.workers.runner.ClusterGate`` on the shared PostgreSQL (on SQLite the single writer serialises the
    claims just as well, though one node alone needs no gate)."""

    def __init__(self, engine: Engine, node: str, clock: Clock = utcnow) -> None:
        self.engine, self.node, self.clock = engine, node, clock

    def claim(self, worker: str, interval: timedelta) -> bool:
        now = self.clock()
        with session_scope(self.engine) as db:
            if self.engine.dialect.name == "postgresql":
                db.exec(  # an INSERT, which sqlmodel's exec also runs
                    pg_insert(WorkerSchedule).values(worker=worker, next_run_at=now, runs=0).on_conflict_do_nothing()
                )
            elif db.get(WorkerSchedule, worker) is None:
                db.add(WorkerSchedule(worker=worker, next_run_at=now))
                db.flush()
            row = db.exec(
                select(WorkerSchedule).where(WorkerSchedule.worker == worker).with_for_update(skip_locked=True)
            ).first()
            if row is None or as_utc(row.next_run_at) > now + interval * TIMER_SLACK:
                return False
            following = as_utc(row.next_run_at) + interval
            row.next_run_at = following if following > now else now + interval
            row.last_run_at, row.last_run_node, row.runs = now, self.node, row.runs + 1
            db.add(row)
        return True
