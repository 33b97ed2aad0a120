"""The process's one libnftables binding, against the real library, in a network namespace of the test's own."""

import ctypes
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest

from netfilter import libnftables

T = TypeVar("T")
_CLONE_NEWNET = 0x40000000


def in_new_namespace(work: Callable[[], T]) -> T:
    """``work``'s result, run on a thread that left for a network namespace of its own (a thread's namespace is
    its own: the test's process, and its tables, stay where they are)."""

    def entered() -> T:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(_CLONE_NEWNET) != 0:
            pytest.skip(f"cannot make a network namespace here: errno {ctypes.get_errno()}")
        return work()

    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(entered).result()


@pytest.fixture(autouse=True)
def library_here() -> None:
    if reason := libnftables.missing():
        pytest.skip(reason)


def test_a_script_runs_and_its_listing_comes_back_as_nft_prints_it() -> None:
    def work() -> tuple[libnftables.Outcome, libnftables.Outcome]:
        with libnftables.Context() as context:
            made = context.run("add table inet probe\nadd chain inet probe c\n")
            listed = context.run("list tables")
        return made, listed

    made, listed = in_new_namespace(work)
    assert made.ok and made.error == ""
    assert listed.ok and listed.output.strip() == "table inet probe"


def test_json_output_is_what_nft_j_prints() -> None:
    def work() -> libnftables.Outcome:
        with libnftables.Context(json_output=True) as context:
            assert context.run("add table inet probe").ok
            return context.run("list tables")

    listed = in_new_namespace(work)
    tables = [item["table"] for item in json.loads(listed.output)["nftables"] if "table" in item]
    assert [(t["family"], t["name"]) for t in tables] == [("inet", "probe")]


def test_a_refused_script_says_why_and_the_next_one_starts_clean() -> None:
    def work() -> tuple[libnftables.Outcome, libnftables.Outcome]:
        with libnftables.Context() as context:
            refused = context.run("add chain inet absent c")
            return refused, context.run("list tables")

    refused, after = in_new_namespace(work)
    assert not refused.ok and "No such file or directory" in refused.error
    assert after.ok and after.error == "" and after.output == ""


def test_a_bounded_wait_covers_the_context_s_whole_life_and_gives_up_in_time() -> None:
    """One lock for the process: the seats' scripts queue behind the VPN's (and the other way), bounded by ``held``
    around the context's making, script and close, so none of them waits past it."""
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with libnftables.ONE_AT_A_TIME:
            holding.set()
            release.wait(10)

    def bounded() -> libnftables.Outcome:
        with libnftables.held(0.2), libnftables.Context() as context:
            return context.run("list tables")

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(10)
        began = time.monotonic()
        with pytest.raises(libnftables.NftablesError, match=r"held libnftables for over 0\.2 s"):
            in_new_namespace(bounded)
        assert time.monotonic() - began < 2
    finally:
        release.set()
        holder.join()
    assert in_new_namespace(bounded).ok


def test_a_closed_context_runs_nothing() -> None:
    context = in_new_namespace(libnftables.Context)
    context.close()
    context.close()  # once is enough, twice does no harm
    with pytest.raises(libnftables.NftablesError, match="closed"):
        context.run("list tables")
