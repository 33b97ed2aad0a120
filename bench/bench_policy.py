"""How long policy work takes per login: loading the document, evaluating, compiling.

The baseline, measured in alternation with each operation in this same process, is parsing the same document's
YAML alone (``yaml.safe_load``): what any configuration file costs to read. Each operation is printed in
microseconds and as a multiple of the baseline.

Run: .venv/bin/python -m bench.bench_policy [--rounds 5]
"""

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import yaml

from bench.interleave import alternate
from policy import compile_guacamole, compile_network_scope, compile_x11, evaluate, in_shift, load_policy

MIXED = Path(__file__).parents[1] / "policy" / "testdata" / "mixed" / "policy.yaml"
NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
GROUPS = [
    f"CN={name},OU=Groups,DC=corp,DC=example" for name in ("Day-Agents", "Night-Agents", "QA-Analysts", "HR-Vetting")
] + ["CN=Domain Users,CN=Users,DC=corp,DC=example"]
"""Four groups the mixed policy names by DN, as the directory gives them, and one it does not name."""


def per_call_us(operation: Callable[[], object], seconds: float = 0.2) -> float:
    calls, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        operation()
        calls += 1
    return elapsed / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    text = MIXED.read_text(encoding="utf-8")
    document = load_policy(text)
    effective = evaluate(document, GROUPS, NOW)
    operations: dict[str, Callable[[], object]] = {
        "baseline: yaml.safe_load": lambda: yaml.safe_load(text),
        "load_policy (mixed testdata)": lambda: load_policy(text),
        "evaluate (5 groups)": lambda: evaluate(document, GROUPS, NOW),
        "in_shift": lambda: in_shift(effective, NOW),
        "compile_x11": lambda: compile_x11(effective, "customer-console"),
        "compile_guacamole": lambda: compile_guacamole(effective, "billing", user="li.wei"),
        "compile_network_scope": lambda: compile_network_scope(effective),
    }
    runs = alternate({name: partial(per_call_us, operation) for name, operation in operations.items()}, args.rounds)
    medians = {name: statistics.median(values) for name, values in runs.items()}
    baseline = medians["baseline: yaml.safe_load"]
    print(f"median of {args.rounds} alternating rounds, 0.2 s each")
    for name, microseconds in medians.items():
        print(f"{name:32} {microseconds:9.1f} µs   {microseconds / baseline:8.3g}x baseline")


if __name__ == "__main__":
    main()
