"""Golden files, as Headscale's policy tests: policy/testdata/<case>/ holds a policy, the users to
evaluate (cases.yaml) and the expected effective policy and compiled parameters (expected.json).

After an intended change, regenerate with `SOHOGW_UPDATE_GOLDEN=1 .venv/bin/pytest tests/policy`
and review the diff of expected.json like code.
"""

import json
import os
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from policy import (
    compile_guacamole,
    compile_network_scope,
    compile_x11,
    evaluate,
    in_shift,
    load_policy,
)

TESTDATA = Path(__file__).parents[2] / "policy" / "testdata"
CASE_DIRS = sorted(path for path in TESTDATA.iterdir() if (path / "cases.yaml").exists())


def _render(case_dir: Path) -> dict[str, object]:
    spec = yaml.safe_load((case_dir / "cases.yaml").read_text(encoding="utf-8"))
    document = load_policy((case_dir / spec["policy"]).read_text(encoding="utf-8"))
    rendered: dict[str, object] = {}
    for case in spec["cases"]:
        now = datetime.fromisoformat(case["now"])
        effective = evaluate(document, case["groups"], now)
        status = in_shift(effective, now)
        compiled: dict[str, object] = {}
        for app_id in case["apps"]:
            if effective.app(app_id).backend == "x11":
                params = compile_x11(effective, app_id)
                compiled[app_id] = {**asdict(params), "watermark_text": params.watermark_text(case["user"], now)}
            else:
                compiled[app_id] = compile_guacamole(effective, app_id, user=case["user"])
        rendered[case["name"]] = {
            "effective": effective.as_dict(),
            "in_shift": {
                "inside": status.inside,
                "restricted": status.restricted,
                "ends_at": status.ends_at.isoformat() if status.ends_at else None,
                "next_starts_at": status.next_starts_at.isoformat() if status.next_starts_at else None,
            },
            "network_scope": [list(item) for item in compile_network_scope(effective).allowed],
            "compiled": compiled,
        }
    return json.loads(json.dumps(rendered))


@pytest.mark.parametrize("case_dir", CASE_DIRS, ids=[path.name for path in CASE_DIRS])
def test_policy_evaluates_and_compiles_as_the_golden_file_says(case_dir: Path) -> None:
    expected_file = case_dir / "expected.json"
    actual = _render(case_dir)
    if os.environ.get("SOHOGW_UPDATE_GOLDEN") == "1":
        expected_file.write_text(json.dumps(actual, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    expected = json.loads(expected_file.read_text(encoding="utf-8"))
    assert sorted(actual) == sorted(expected)
    for name in expected:
        assert actual[name] == expected[name], f"case {name} of {case_dir.name} differs from expected.json"


@pytest.mark.parametrize("case_dir", CASE_DIRS, ids=[path.name for path in CASE_DIRS])
def test_golden_policies_round_trip_through_dump(case_dir: Path) -> None:
    from policy import dump_policy

    spec = yaml.safe_load((case_dir / "cases.yaml").read_text(encoding="utf-8"))
    document = load_policy((case_dir / spec["policy"]).read_text(encoding="utf-8"))
    dumped = dump_policy(document)
    assert load_policy(dumped) == document
    assert dump_policy(load_policy(dumped)) == dumped
