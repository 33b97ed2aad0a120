"""Help from the phone: the agent keys the help code (``voice.help_code``) on the nailed-up line.

`request_help_from_phone` is the one hook: the lead points it at supervision's
``request_help(db, session_id, source, now)`` (the "need help" flag on the wall) at the merge. Until then it writes
the audit row only, so the key press is never lost.
"""

from datetime import datetime

from sqlmodel import Session

from gateway.audit.service import record
from gateway.voice.models import CallLeg


def request_help_from_phone(db: Session, leg: CallLeg, now: datetime) -> None:
    """Called in the event's transaction when the help code arrives on a connected leg."""
    record(
        db,
        actor=leg.login,
        action="voice.help",
        target=leg.login,
        outcome="requested",
        detail={"session": leg.session_id, "person": leg.person_id, "source": "phone"},
        clock=lambda: now,
    )
