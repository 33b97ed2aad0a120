"""A missing real component skips on a developer's machine and fails under CI=true, as does any other skip
there, except a test marked ``kernel_feature``."""

from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]

PROBE = """
import pytest
from tests.support.components import require_programs

def test_needs_a_program_nobody_has():
    require_programs("sohogw-no-such-program", install="nothing installs it")

def test_a_fixture_skips_by_hand():
    pytest.skip("some helper of someone's own")

@pytest.mark.kernel_feature
def test_needs_a_kernel_module():
    pytest.skip("no such module in this kernel")

def test_needs_nothing():
    pass
"""


@pytest.mark.parametrize(
    ("ci", "outcome"), [("", {"skipped": 3, "passed": 1}), ("true", {"failed": 2, "skipped": 1, "passed": 1})]
)
def test_a_missing_program_or_any_skip_fails_in_ci_but_a_kernel_feature(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str, outcome: dict[str, int]
) -> None:
    monkeypatch.setenv("CI", ci)
    monkeypatch.setenv("PYTHONPATH", str(REPOSITORY))  # the probe runs with our conftest's hook, from elsewhere
    pytester.makepyfile(test_probe=PROBE)
    result = pytester.runpytest_subprocess("-p", "tests.conftest", "--rootdir", str(pytester.path))
    result.assert_outcomes(**outcome)
    if ci:
        result.stdout.fnmatch_lines(["*sohogw-no-such-program is not available here (nothing installs it)*"])
