"""The cyclic garbage collector held off for the length of a VPN pass (``controller.cyclic_gc_paused``)."""

import gc

import pytest

from gateway.vpn.controller import cyclic_gc_paused


def test_the_collector_is_off_inside_and_on_again_after_a_pass_that_failed() -> None:
    assert gc.isenabled()
    collections: list[str] = []

    def heard(phase: str, info: dict[str, int]) -> None:
        collections.append(phase)

    gc.callbacks.append(heard)
    try:
        with pytest.raises(RuntimeError), cyclic_gc_paused():
            assert not gc.isenabled()
            garbage = [[] for _ in range(50_000)]  # far past the young generation's threshold of 700
            del garbage
            inside = list(collections)
            raise RuntimeError("the pass failed")
    finally:
        gc.callbacks.remove(heard)
    # Read inside the pause: once it ends, a young collection may run at once, when earlier allocations (other
    # tests', threads') left the young generation near its threshold.
    assert inside == []
    assert gc.isenabled()


def test_a_collector_someone_else_turned_off_stays_off() -> None:
    gc.disable()
    try:
        with cyclic_gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
