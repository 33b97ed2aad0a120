"""The seat each live session holds, as the supervision wall shows it: read from the seats domain's live leases.

Idle since the lease's ``last_activity_at``: its last connect or disconnect, or the last keyboard or mouse input the
seat broker noted (``seats.service.note_input``: the X11 display's, or what guacamole-lite reported of a Guacamole
seat), so the wall's idle counter restarts when the agent types.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from gateway.clock import as_utc
from gateway.seats.service import live_leases


@dataclass(frozen=True)
class SeatInfo:
    seat_id: str
    backend: str
    """``x11`` or ``guacamole``."""
    idle_since: datetime | None
    """When the agent last typed or moved the mouse on the seat; None when the backend cannot tell."""
    node: str
    """The gateway node that runs the seat: its picture and its watch are served there."""


def seats_of(db: Session, session_ids: Sequence[str]) -> dict[str, SeatInfo]:
    """The seat of each session from the seats domain's live leases (one query for all; sessions without a seat are
    left out)."""
    wanted = set(session_ids)
    return {
        lease.session_id: SeatInfo(lease.seat_id, lease.backend, as_utc(lease.last_activity_at), lease.node)
        for lease in live_leases(db)
        if lease.session_id in wanted
    }
