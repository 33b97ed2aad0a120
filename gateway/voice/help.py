"""Help from the phone: the agent keys the help code (``voice.help_code``) on the nailed-up line.

`request_help_from_phone` audits the key press in the event's transaction and nudges ``HELP_KEYED`` after its commit;
supervision's ``supervision.phone_help`` worker (above voice, so it listens rather than being called) raises the
"need help" flag on the wall. Its interval pass turns key presses whose nudge was lost into flags too.
"""

from datetime import datetime

from sqlmodel import Session

from gateway.audit.service import record
from gateway.events import nudge_after_commit
from gateway.voice.models import CallLeg

HELP_KEYED = "voice.help_keyed"
"""Nudged after the commit of a help code keyed on a connected leg (payload: the leg's home session id)."""
HELP_AUDIT_ACTION = "voice.help"


def request_help_from_phone(db: Session, leg: CallLeg, now: datetime) -> None:
    """Called in the event's transaction when the help code arrives on a connected leg."""
    record(
        db,
        actor=leg.login,
        action=HELP_AUDIT_ACTION,
        target=leg.login,
        outcome="requested",
        detail={"session": leg.session_id, "person": leg.person_id, "source": "phone"},
        clock=lambda: now,
    )
    nudge_after_commit(db, HELP_KEYED, leg.session_id)
