"""The Customer Console on a real seat, driven the way the gateway will drive it: the call-state file
says a call is up, the agent types the caller's service password, the call ends."""

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop_broker.apps.call_state import CALL_STATE_ENV
from tests.desktop_broker.x11_fixtures import RunningSeat, running_seat, wait_for_window, x_run

pytestmark = pytest.mark.e2e

LI_WEI = "+8613800000001"


@pytest.fixture
def call_state_file() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="sohogw-call-", dir="/var/tmp"))
    directory.chmod(0o755)  # the seat user reads it; only root writes it
    try:
        yield directory / "call.json"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def console(call_state_file: Path) -> Iterator[RunningSeat]:
    _write(call_state_file, {"active": False})
    with running_seat(app_env={CALL_STATE_ENV: str(call_state_file)}) as running:
        wait_for_window(running.seat, "^Customer Console - idle$")
        yield running


def _write(path: Path, state: dict[str, object]) -> None:
    """Replace the file atomically, as the gateway must: the app never reads half a file."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(state))
    temporary.chmod(0o644)
    os.replace(temporary, path)


def _type_password(running: RunningSeat, text: str) -> None:
    x_run(running.seat, ["xdotool", "type", "--delay", "20", text])
    x_run(running.seat, ["xdotool", "key", "Return"])


def test_customer_data_unlocks_only_with_the_callers_password_and_locks_at_hang_up(
    console: RunningSeat, call_state_file: Path
) -> None:
    _write(call_state_file, {"active": True, "caller": LI_WEI})
    wait_for_window(console.seat, "^Customer Console - on call$")
    _type_password(console, "000000")
    _type_password(console, "314159")
    wait_for_window(console.seat, "^Customer Console - on call: verified$")
    _write(call_state_file, {"active": False})
    wait_for_window(console.seat, "^Customer Console - idle$")


def test_a_password_typed_with_no_call_unlocks_nothing(console: RunningSeat, call_state_file: Path) -> None:
    _type_password(console, "314159")
    _write(call_state_file, {"active": True, "caller": LI_WEI})
    wait_for_window(console.seat, "^Customer Console - on call$")
