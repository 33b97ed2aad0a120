"""A seat's allow-list waits for libnftables, which the process runs one script at a time, only so long."""

import threading
import time

import pytest

from desktop_broker.x11 import egress
from desktop_broker.x11.errors import SeatStartFailed
from netfilter import libnftables


class HungScript:
    """Another context's script the kernel does not answer: it holds the library from ``run`` until ``release``."""

    def __init__(self) -> None:
        self.holding, self.release = threading.Event(), threading.Event()

    def run(self) -> None:
        with libnftables.ONE_AT_A_TIME:
            self.holding.set()
            self.release.wait(30)


@pytest.fixture(autouse=True)
def seat_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """A seat's wait for the library cut to 0.3 s, where libnftables is here to wait for."""
    if reason := libnftables.missing():
        pytest.skip(reason)
    monkeypatch.setattr(egress, "LIBRARY_WAIT_S", 0.3)


def test_a_seat_behind_a_script_that_never_returns_fails_to_start_within_its_wait() -> None:
    """Another context's script holding the library (the VPN's load the kernel does not answer) keeps a seat from
    starting for ``LIBRARY_WAIT_S`` at most: the seat then fails, closed, and changed nothing."""
    hung = HungScript()
    holder = threading.Thread(target=hung.run)
    holder.start()
    try:
        assert hung.holding.wait(10)
        began = time.monotonic()
        with pytest.raises(SeatStartFailed, match=r"held libnftables for over 0\.3 s"):
            egress.allow_egress(61234, ())
        assert time.monotonic() - began < 2
    finally:
        hung.release.set()
        holder.join()


def test_a_script_that_starts_while_a_seat_makes_its_allow_list_does_not_hold_it_past_its_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bound covers the seat's whole use of the library, its context's close included: a script the kernel never
    answers that asks for the library once the seat's context is made waits for the seat, not the other way."""
    hung = HungScript()
    real_run = libnftables.Context.run

    def run_once_another_script_asked(context: libnftables.Context, *args: object) -> libnftables.Outcome:
        threading.Thread(target=hung.run, daemon=True).start()
        hung.holding.wait(1)  # it gets the library only if the seat does not hold it
        return real_run(context, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(libnftables.Context, "run", run_once_another_script_asked)
    outcome: list[str] = []

    def seat_start() -> None:
        try:
            egress.allow_egress(61234, ())
            outcome.append("started")
        except SeatStartFailed as error:
            outcome.append(f"failed: {error}")

    seat = threading.Thread(target=seat_start, daemon=True)
    seat.start()
    try:
        seat.join(5)
        assert not seat.is_alive(), "the seat still waits for the library, past its 0.3 s"
        assert outcome == ["started"]
    finally:
        hung.release.set()
        seat.join(5)
        monkeypatch.undo()
        egress.remove_egress(61234)
