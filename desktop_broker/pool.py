"""Pre-warmed X11 seats per published app, handed out once and never reused.

A seat is started before anyone asks for it (a cold start costs ~0.3 s, a warm hand-over only the
watermark's redraw), assigned to one person on launch, and on release stopped and wiped: its Unix
user, home, temporary files and cookies go with it (`SeatProcess.stop`), and a fresh seat takes its
place. The pool knows nothing of the gateway; it is told which kinds of seat to keep warm and who
holds which seat, and reports seats that died.
"""

import logging
import secrets
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from desktop_broker.apps.call_state import CALL_STATE_ENV
from desktop_broker.x11 import SeatError, SeatPasswords, SeatProcess, SeatSpec
from policy.rules import DisplayRules
from policy.schema import SeatLimits
from policy.values import Destination

log = logging.getLogger(__name__)
UNASSIGNED_LABEL = "not assigned"


class SeatUnavailable(Exception):
    """No seat can be given right now; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class SeatKind:
    """Seats are interchangeable only with the same app and the same display rules (x11vnc's flags)."""

    app_id: str
    argv: tuple[str, ...]
    rules: DisplayRules
    limits: SeatLimits = SeatLimits()  # noqa: RUF009 - frozen pydantic model, immutable
    """The seat's cgroup limits, from the app's policy."""
    egress: tuple[Destination, ...] = ()
    """The app's backends: the only destinations the seat may connect to."""


@dataclass(slots=True)
class PooledSeat:
    """One running seat of the pool and who holds it (None while it waits warm)."""

    seat_id: str
    kind: SeatKind
    process: SeatProcess
    passwords: SeatPasswords
    holder: str | None = None
    call_state_file: Path | None = None
    """Where the broker writes this seat's call state; the app was started with it in SOHOGW_CALL_STATE."""
    assigned_at: datetime | None = None
    """When `holder` got the seat: the holder's lease may not be committed yet for a moment after it."""
    standby: socket.socket | None = None
    """A connection to the seat's x11vnc, VNC-authenticated and stopped before ClientInit, opened while the seat
    waited warm (`SeatPool.open_standby`): the first viewer takes it instead of connecting, because x11vnc without a
    client looks for one only every 200 ms (docs/seats.md), a wait the launch would otherwise pay."""


@dataclass(frozen=True, slots=True)
class DeadSeat:
    """A seat whose process died: `holder` lost it (None: it was still warm and is simply replaced)."""

    seat_id: str
    holder: str | None
    failure: str


@dataclass(frozen=True, slots=True)
class UnstoppedSeat:
    """A seat `stop_all` could not stop completely; `seat.process.stop()` may be retried."""

    seat: PooledSeat
    reason: str


SeatStarter = Callable[[SeatSpec], SeatProcess]
StandbyOpener = Callable[[SeatProcess, SeatPasswords], socket.socket]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class SeatPool:
    """At most `node_cap` seats run on this node; `warm_per_kind` of each wanted kind wait unassigned."""

    start: SeatStarter
    node_cap: int
    warm_per_kind: int
    call_state_root: Path | None = None
    """Give every seat its own call-state file, `<root>/<seat id>/call-state.json`, fixed at start (a warm
    seat's app is running before anyone holds it) and readable only by the seat's user."""
    now: Callable[[], datetime] = _utcnow
    """The clock assignments are stamped with (the broker's, so tests can move time)."""
    open_standby: StandbyOpener | None = None
    """Opens a warm seat's `PooledSeat.standby` connection (`x11.open_authenticated`); None: warm seats hold none."""
    _seats: dict[str, PooledSeat] = field(default_factory=dict)
    _starting: int = 0
    _wanted: tuple[SeatKind, ...] = ()
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _lifecycle: threading.Lock = field(default_factory=threading.Lock)
    """Starts and stops run one at a time: a stopped seat frees its display number, which Xvfb may give
    the next seat at once, and that seat's user `sohoseat-N` must not be removed by the old seat's stop."""

    def want_warm(self, kinds: Iterable[SeatKind]) -> None:
        """The kinds to keep warm (from the policy in force); `fill()` then starts what is missing."""
        with self._lock:
            self._wanted = tuple(dict.fromkeys(kinds))

    def assign(self, kind: SeatKind, holder: str, label: str) -> PooledSeat:
        """A warm seat of `kind` for `holder`, or a cold one; raises `SeatUnavailable` at the node's cap.

        The watermark is redrawn with `label` before the seat is returned, so nobody sees a seat
        without their name on it.
        """
        evicted: PooledSeat | None = None
        with self._lock:
            seat = next((s for s in self._seats.values() if s.holder is None and s.kind == kind), None)
            if seat is not None:
                seat.holder, seat.assigned_at = holder, self.now()
            else:
                evicted = self._make_room()
                self._starting += 1
        if seat is None:
            if evicted is not None:
                self._stop(evicted)
            seat = self._start(kind, holder=holder)
        try:
            seat.process.show_watermark(label)
        except BaseException:
            self.release(seat.seat_id)
            raise
        return seat

    def _make_room(self) -> PooledSeat | None:
        """Under the lock: free a place for a cold start, evicting a warm seat of another kind if needed."""
        if len(self._seats) + self._starting < self.node_cap:
            return None
        warm = next((s for s in self._seats.values() if s.holder is None), None)
        if warm is None:
            raise SeatUnavailable(
                f"no seat free on this node: all {self.node_cap} seats are in use; try again in a minute "
                "or ask an administrator to raise the cap per node"
            )
        del self._seats[warm.seat_id]
        return warm

    def _start(self, kind: SeatKind, holder: str | None) -> PooledSeat:
        """Start a seat for a place already reserved in `_starting`."""
        passwords = SeatPasswords.generate()
        seat_id = f"seat-{secrets.token_hex(6)}"
        feed_dir = self.call_state_root / seat_id if self.call_state_root is not None else None
        call_state_file = feed_dir / "call-state.json" if feed_dir is not None else None
        app_env = {CALL_STATE_ENV: str(call_state_file)} if call_state_file is not None else {}
        spec = SeatSpec(
            kind.argv,
            kind.rules,
            UNASSIGNED_LABEL,
            passwords,
            app_env=app_env,
            feed_dir=feed_dir,
            limits=kind.limits,
            egress=kind.egress,
        )
        try:
            with self._lifecycle:
                process = self.start(spec)
        finally:
            with self._lock:
                self._starting -= 1
        assigned_at = self.now() if holder is not None else None
        seat = PooledSeat(seat_id, kind, process, passwords, holder, call_state_file, assigned_at)
        if holder is None and self.open_standby is not None:
            try:
                seat.standby = self.open_standby(process, passwords)
            except (SeatError, OSError) as error:  # the seat still works: its first viewer connects itself
                log.warning("seat %s: no standby connection to its x11vnc (%s)", seat_id, error)
        with self._lock:
            self._seats[seat.seat_id] = seat
        return seat

    def get(self, seat_id: str) -> PooledSeat | None:
        with self._lock:
            return self._seats.get(seat_id)

    def held(self, assigned_before: datetime | None = None) -> dict[str, str]:
        """Seat id → holder, for every assigned seat (the reconciler compares it with the leases).

        With `assigned_before`, only seats assigned before then: a seat handed over a moment ago is held
        by a lease its launch has not committed yet, which the reconciler must not take for an orphan.
        """
        with self._lock:
            return {
                s.seat_id: s.holder
                for s in self._seats.values()
                if s.holder is not None
                and (assigned_before is None or (s.assigned_at is not None and s.assigned_at < assigned_before))
            }

    def release(self, seat_id: str) -> None:
        """Stop and wipe the seat; it is never handed to anyone again. Unknown ids are ignored."""
        with self._lock:
            seat = self._seats.pop(seat_id, None)
        if seat is not None:
            self._stop(seat)

    def take_standby(self, seat: PooledSeat) -> socket.socket | None:
        """The seat's standby connection, once (the caller owns it then); None when there was none or it was taken."""
        with self._lock:
            standby, seat.standby = seat.standby, None
        return standby

    def _stop(self, seat: PooledSeat) -> None:
        if (standby := self.take_standby(seat)) is not None:
            standby.close()
        with self._lifecycle:
            seat.process.stop()

    def fill(self) -> int:
        """Start warm seats up to `warm_per_kind` of each wanted kind, within the cap; returns how many."""
        started = 0
        for kind in self._wanted:
            while True:
                with self._lock:
                    warm = sum(1 for s in self._seats.values() if s.holder is None and s.kind == kind)
                    if warm >= self.warm_per_kind or len(self._seats) + self._starting >= self.node_cap:
                        break
                    self._starting += 1
                self._start(kind, holder=None)
                started += 1
        return started

    def find_dead(self) -> list[DeadSeat]:
        """Remove and stop every seat with a dead part; the caller ends the holders' leases."""
        with self._lock:
            dead = [(s, failure) for s in self._seats.values() if (failure := s.process.failure()) is not None]
            for seat, _ in dead:
                del self._seats[seat.seat_id]
        for seat, failure in dead:
            log.warning("seat %s (%s) died: %s", seat.seat_id, seat.holder or "warm", failure)
            self._stop(seat)
        return [DeadSeat(seat.seat_id, seat.holder, failure) for seat, failure in dead]

    def count(self) -> tuple[int, int]:
        """(assigned, warm) seats running now."""
        with self._lock:
            assigned = sum(1 for s in self._seats.values() if s.holder is not None)
            return assigned, len(self._seats) - assigned

    def stop_all(self) -> list[UnstoppedSeat]:
        """Stop every seat, even after one fails; returns (and logs) those that could not be stopped.

        One seat's failure (e.g. `userdel` losing to another process) must not leave the others running.
        """
        with self._lock:
            seats = list(self._seats.values())
            self._seats.clear()
        unstopped = []
        for seat in seats:
            try:
                self._stop(seat)
            except (SeatError, OSError) as error:
                log.error("seat %s (%s) could not be stopped: %s", seat.seat_id, seat.holder or "warm", error)
                unstopped.append(UnstoppedSeat(seat, str(error)))
        return unstopped
