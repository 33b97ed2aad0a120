"""Measure a thing and its baseline in alternation, in the same process.

A machine that speeds up or slows down during a bench (another job on the two cores, a warm cache, a busy disk)
then weighs on both alike, and their ratio stays honest. Rounds run A B, then B A, so neither side always goes first.
"""

import threading
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import TypeVar

T = TypeVar("T")


def alternate(measures: Mapping[str, Callable[[], T]], rounds: int) -> dict[str, list[T]]:
    """Each measure ``rounds`` times, alternating with the others; the results by name, in round order."""
    results: dict[str, list[T]] = {name: [] for name in measures}
    names = list(measures)
    for round_number in range(rounds):
        for name in names if round_number % 2 == 0 else reversed(names):
            results[name].append(measures[name]())
    return results


def throughput(work: Callable[[], None], threads: int, seconds: float) -> tuple[int, float, list[float]]:
    """Run ``work`` in ``threads`` loops for ``seconds``: (operations, elapsed seconds, each latency)."""
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def loop() -> None:
        mine = []
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            work()
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return len(latencies), time.perf_counter() - started, latencies


def alternating_throughput(
    works: Mapping[str, Callable[[], None]], threads: int, seconds: float, rounds: int = 4
) -> dict[str, tuple[float, list[float]]]:
    """Each work for ``seconds`` in all, in ``rounds`` alternating slices: (operations per minute, latencies)."""
    slices = alternate({name: partial(throughput, work, threads, seconds / rounds) for name, work in works.items()},
                       rounds)  # fmt: skip
    figures = {}
    for name, runs in slices.items():
        operations = sum(run[0] for run in runs)
        elapsed = sum(run[1] for run in runs)
        figures[name] = (operations / elapsed * 60, [latency for run in runs for latency in run[2]])
    return figures
