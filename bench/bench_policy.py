"""How long policy work takes per login: loading the document, evaluating, compiling.

Run: .venv/bin/python bench/bench_policy.py  (prints microseconds per operation)
"""

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from policy import compile_guacamole, compile_network_scope, compile_x11, evaluate, in_shift, load_policy

MIXED = Path(__file__).parents[1] / "policy" / "testdata" / "mixed" / "policy.yaml"
NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
GROUPS = ["Day-Agents", "Night-Agents", "QA-Analysts", "HR-Vetting", "Domain Users"]


def per_call_us(operation: Callable[[], object], seconds: float = 1.0) -> float:
    calls, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        operation()
        calls += 1
    return elapsed / calls * 1e6


def main() -> None:
    text = MIXED.read_text(encoding="utf-8")
    document = load_policy(text)
    effective = evaluate(document, GROUPS, NOW)
    results = {
        "load_policy (mixed testdata)": per_call_us(lambda: load_policy(text)),
        "evaluate (5 groups)": per_call_us(lambda: evaluate(document, GROUPS, NOW)),
        "in_shift": per_call_us(lambda: in_shift(effective, NOW)),
        "compile_x11": per_call_us(lambda: compile_x11(effective, "customer-console")),
        "compile_guacamole": per_call_us(lambda: compile_guacamole(effective, "billing", user="li.wei")),
        "compile_network_scope": per_call_us(lambda: compile_network_scope(effective)),
    }
    for name, microseconds in results.items():
        print(f"{name:32} {microseconds:9.1f} µs")


if __name__ == "__main__":
    main()
