"""Customer calls on an agent's leg: offered, answered, ended; recorded per session and mirrored to a small JSON
file the agent console reads (``SOHOGW_CALL_STATE``, format of ``desktop_broker/apps/call_state.py``).

The file is written after the commit (a nudge), atomically (write then rename), so the console never reads half a
file, and says ``active`` only while a call is answered: customer data stays hidden before and after.
"""

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel
from sqlmodel import Session, col, select

from gateway.events import nudge_after_commit
from gateway.voice.dialable import mask
from gateway.voice.models import CallEvent
from gateway.voice.platform import CustomerCallEvent, CustomerCallKind
from gateway.voice.service import lock_leg

CALL_STATE_CHANGED = "voice.call_state"


@dataclass(frozen=True, slots=True)
class CallStateChange:
    session_id: str
    kind: CustomerCallKind
    caller: str | None


class CustomerCallPublic(BaseModel):
    """A customer call as the agent's API lists it, after the fact: the caller's number masked (customer data is
    shown whole only by the console's call-state file, and only while the call is answered)."""

    kind: str
    caller: str | None
    at: datetime


def record_customer_call(db: Session, event: CustomerCallEvent, now: datetime) -> CallEvent | None:
    """Store the event against the leg's session; an event for an unknown leg is ignored (returns None)."""
    leg = lock_leg(db, event.leg_id)
    if leg is None:
        return None
    row = CallEvent(
        session_id=leg.session_id,
        person_id=leg.person_id,
        login=leg.login,
        leg_id=leg.id,
        kind=f"call.{event.kind.value}",
        caller=event.caller,
        at=now,
    )
    db.add(row)
    db.flush()
    nudge_after_commit(db, CALL_STATE_CHANGED, CallStateChange(leg.session_id, event.kind, event.caller))
    return row


def customer_calls(db: Session, session_id: str) -> list[CustomerCallPublic]:
    query = (
        select(CallEvent)
        .where(CallEvent.session_id == session_id, col(CallEvent.kind).startswith("call."))
        .order_by(col(CallEvent.at), col(CallEvent.id))
    )
    return [
        CustomerCallPublic(kind=e.kind.removeprefix("call."), caller=mask(e.caller) if e.caller else None, at=e.at)
        for e in db.exec(query)
    ]


def call_state_file(directory: Path, session_id: str) -> Path:
    """Where a session's call state lives; the seat launcher passes it as ``SOHOGW_CALL_STATE``."""
    return directory / f"{session_id}.json"


def current_call_state(db: Session, session_id: str) -> CallStateChange | None:
    """The session's latest customer-call event as a call state (None: no call yet); the seat broker feeds
    seats from it, so a seat opened mid-call or on another node shows the same state as the database."""
    latest = db.exec(
        select(CallEvent)
        .where(CallEvent.session_id == session_id, col(CallEvent.kind).startswith("call."))
        .order_by(col(CallEvent.at).desc(), col(CallEvent.id).desc())
    ).first()
    if latest is None:
        return None
    return CallStateChange(session_id, CustomerCallKind(latest.kind.removeprefix("call.")), latest.caller)


def write_call_state(directory: Path, change: CallStateChange) -> Path:
    return write_call_state_file(call_state_file(directory, change.session_id), change)


def write_call_state_file(path: Path, change: CallStateChange) -> Path:
    """Write the state to `path` atomically (a temporary file in the same directory, then rename), mode 0640 with
    the directory's group: a seat's feed directory is `root:<the seat user's group>` 0750, so only that seat's user
    reads the caller's number, and the file itself is no more open than that whatever its directory's mode (review
    finding F2)."""
    active = change.kind is CustomerCallKind.ANSWERED
    state = {"active": active, "caller": change.caller, "state": change.kind.value}
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".call-state-")  # 0600 until complete
    with os.fdopen(handle, "w") as out:
        json.dump(state, out)
        group = path.parent.stat().st_gid
        if os.fstat(out.fileno()).st_gid != group:
            os.fchown(out.fileno(), -1, group)
        os.fchmod(out.fileno(), 0o640)
    os.replace(temporary, path)
    return path
