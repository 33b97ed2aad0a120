"""An ending session becomes ended once its children have closed.

``end_session`` marks a session *ending* (reason, audit row, nudge). Each child domain closes its part on that nudge
— the VPN retires the tunnel lease and removes the peer, the broker ends the seat lease and stops the seat, voice
releases and hangs up the leg — and the ``sessions.endings`` worker marks the session *ended* once none of them is
live. The children are described by the domains that own them (``LiveChildren``, composed by ``gateway.app``): this
module imports none of them. A child that never closes (a PBX that no longer answers) does not keep a session ending
for ever: after ``ENDING_GRACE`` the session is ended anyway and the children still live are audited.
"""

from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from gateway.audit.service import record
from gateway.clock import as_utc
from gateway.sessions.models import HomeSession, SessionState

ENDING_GRACE = timedelta(seconds=60)
"""Longer than any child takes to close when its system answers (a seat stops in about a second, a leg hangs up in
a few); the safety net for one that does not."""


@dataclass(frozen=True)
class LiveChildren:
    """One kind of child of a home session, as its domain describes it."""

    kind: str
    """Shown in the audit row of a session ended with children stuck: "tunnel", "seat", "voice leg"."""
    closed_topic: str
    """The nudge its domain sends when one of them closes."""
    live_of: Callable[[Session, Collection[str]], set[str]]
    """Of the given session ids, those that still have a live child of this kind."""


def finish_endings(
    db: Session, now: datetime, children: Sequence[LiveChildren], grace: timedelta = ENDING_GRACE
) -> int:
    """Mark ended every ending session with no live child, and those ending for longer than ``grace`` (audited with
    the kinds still live); returns how many were marked."""
    ending = list(db.exec(select(HomeSession).where(HomeSession.state == SessionState.ENDING)).all())
    if not ending:
        return 0
    ids = [session.id for session in ending]
    holding: dict[str, list[str]] = defaultdict(list)
    for child in children:
        for session_id in child.live_of(db, ids):
            holding[session_id].append(child.kind)
    finished = 0
    for session in ending:
        stuck = holding.get(session.id, [])
        overdue = session.ended_at is not None and now - as_utc(session.ended_at) >= grace
        if stuck and not overdue:
            continue
        session.state = SessionState.ENDED
        db.add(session)
        finished += 1
        if stuck:
            record(
                db,
                actor="system",
                action="session.end",
                target=session.login,
                outcome="children_stuck",
                detail={"session": session.id, "person": session.person_id, "live": sorted(stuck)},
            )
    db.flush()
    return finished


def ending_sessions(db: Session, session_ids: Collection[str]) -> set[str]:
    """Of ``session_ids``, those still ending (for tests and pages that wait on them)."""
    query = select(HomeSession.id).where(
        col(HomeSession.id).in_(list(session_ids)), HomeSession.state == SessionState.ENDING
    )
    return set(db.exec(query).all())
