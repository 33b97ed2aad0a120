"""Whether a call is active, as the gateway's voice capability reports it.

The gateway writes a small JSON file, `{"active": true, "caller": "+8613800000001"}`, at the path in
SOHOGW_CALL_STATE. A missing, unreadable or malformed file means "no call": customer data stays hidden
when in doubt.
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path

CALL_STATE_ENV = "SOHOGW_CALL_STATE"


@dataclass(frozen=True, slots=True)
class CallState:
    active: bool
    caller: str | None = None


NO_CALL = CallState(active=False)


def call_state_path() -> Path | None:
    """The file the gateway feeds, or None when the console runs stand-alone (simulated calls)."""
    value = os.environ.get(CALL_STATE_ENV)
    return Path(value) if value else None


def read_call_state(path: Path) -> CallState:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return NO_CALL
    if not isinstance(data, dict) or data.get("active") is not True or not isinstance(data.get("caller"), str):
        return NO_CALL
    return CallState(active=True, caller=data["caller"])
