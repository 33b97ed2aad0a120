"""The seats' background work, on the one worker contract.

``seats.pool`` keeps this node's seat pool matching the leases: at once when a lease or a session ends (the seat is
stopped and wiped; a session's leases are ended first), when a call state changes or a seat is assigned (the seat's
call-state file is rewritten), and every few seconds as the safety net (dead, orphaned and missing warm seats); each
pass also closes the screen wall's joins of Guacamole leases that ended. Its first pass ends whatever an earlier life
of the gateway left behind. ``seats.limits`` ends seats that ran idle, too
long or unreconnected, and those whose session is no longer live. ``seats.recordings`` starts, stops, seals and
purges this node's screen recordings, at once when a seat ends, a call state changes or a seat is assigned.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlmodel import Session

from gateway.seats import service
from gateway.seats.broker import SeatBroker
from gateway.sessions.service import SESSION_ENDED
from gateway.voice.calls import CALL_STATE_CHANGED
from gateway.workers.contract import Nudge, Schedule, Worker

POOL_SECONDS = 3
LIMITS_SECONDS = 5
RECORDINGS_SECONDS = 5


@dataclass(frozen=True)
class PoolPass:
    """What one pass of the pool does: everything (``full``), or stop some seats and feed some call states."""

    full: bool
    released: list[str] = field(default_factory=list)
    """Seats of this node whose lease ended."""
    fed_sessions: set[str] = field(default_factory=set)
    """Sessions whose seats' call-state file may be stale."""


class SeatPoolWorker(Worker[PoolPass, None]):
    name = "seats.pool"
    schedule = Schedule(
        interval=timedelta(seconds=POOL_SECONDS),
        topics=frozenset({service.SEAT_ENDED, SESSION_ENDED, CALL_STATE_CHANGED, service.SEAT_ASSIGNED}),
    )

    def __init__(self, broker: SeatBroker) -> None:
        self.broker = broker
        self._warmed = False

    def desired(self, db: Session, nudges: Sequence[Nudge]) -> PoolPass:
        """Ends the leases of ended sessions here (their own ``SEAT_ENDED`` nudges then stop the seats)."""
        work = PoolPass(full=not nudges)
        for nudge in nudges:
            if nudge.topic == SESSION_ENDED:
                service.end_seats_of_session(db, str(nudge.payload), self.broker.clock())
            elif nudge.topic == service.SEAT_ENDED:
                node, seat_id = nudge.payload
                if node == self.broker.node:
                    work.released.append(seat_id)
            elif nudge.topic == CALL_STATE_CHANGED:
                work.fed_sessions.add(nudge.payload.session_id)
            else:
                work.fed_sessions.add(str(nudge.payload))
        return work

    def apply(self, desired: PoolPass, observed: None) -> None:
        for seat_id in desired.released:
            self.broker.release(seat_id)
        if not self._warmed:
            self.broker.warm_up()
            self._warmed = True
        elif desired.full:
            self.broker.reconcile()
        for session_id in desired.fed_sessions:
            self.broker.feed_call_state(session_id)
        self.broker.end_stale_joins()

    def stop(self) -> None:
        self.broker.stop()


class SeatLimitsWorker(Worker[None, None]):
    name = "seats.limits"
    schedule = Schedule(interval=timedelta(seconds=LIMITS_SECONDS), first_pass_delay=timedelta(seconds=LIMITS_SECONDS))

    def __init__(self, broker: SeatBroker) -> None:
        self.broker = broker

    def desired(self, db: Session, nudges: Sequence[Nudge]) -> None:
        return None

    def apply(self, desired: None, observed: None) -> None:
        """Reads each seat's idle time, then ends what is overdue in the broker's own unit of work (audited)."""
        self.broker.enforce_limits()


class SeatRecordingsWorker(Worker[None, None]):
    name = "seats.recordings"
    schedule = Schedule(
        interval=timedelta(seconds=RECORDINGS_SECONDS),
        topics=frozenset({service.SEAT_ENDED, CALL_STATE_CHANGED, service.SEAT_ASSIGNED}),
    )

    def __init__(self, broker: SeatBroker) -> None:
        self.broker = broker

    def desired(self, db: Session, nudges: Sequence[Nudge]) -> None:
        return None

    def apply(self, desired: None, observed: None) -> None:
        """Recordings follow the leases and calls in the database (``SeatRecorders.reconcile``), outside this pass's
        transaction; a disk that is full or gone is logged and retried by the next pass."""
        self.broker.reconcile_recordings()


def seat_workers(broker: SeatBroker) -> list[Worker[Any, Any]]:
    workers: list[Worker[Any, Any]] = [SeatPoolWorker(broker), SeatLimitsWorker(broker)]
    if broker.recorders is not None:
        workers.append(SeatRecordingsWorker(broker))
    return workers
