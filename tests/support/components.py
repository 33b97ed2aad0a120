"""The one way a test says it needs a real component that may be missing on a developer's machine.

Locally a missing component skips the test, naming the package to install. Under ``CI=true`` it fails the test:
CI exists to run every tier against the real thing, and a tier that skips there proves nothing while staying green.
"""

import os
import shutil
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI") == "true"


def require(component: str, present: bool, install: str) -> None:
    """Go on when ``present``; otherwise skip (locally) or fail (CI) saying what to ``install``."""
    if present:
        return
    message = f"{component} is not available here ({install})"
    if IN_CI:
        pytest.fail(f"{message}: CI must run every tier with its real components", pytrace=False)
    pytest.skip(message)


def require_programs(*programs: str, install: str) -> None:
    """Each of ``programs`` on PATH or at its absolute path."""
    for program in programs:
        found = Path(program).is_file() if program.startswith("/") else shutil.which(program) is not None
        require(program, found, install)
