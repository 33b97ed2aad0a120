"""What voice looks like from outside: the leg of a session for the agent's page and the supervisors' wall."""

from sqlmodel import Session, col, select

from gateway.voice.dialable import mask
from gateway.voice.models import CallLeg, LegPublic


def public(leg: CallLeg) -> LegPublic:
    return LegPublic(
        session_id=leg.session_id,
        login=leg.login,
        number=mask(leg.e164),
        state=leg.state,
        attempts=leg.attempts,
        last_cause=leg.last_cause,
        problem=leg.problem,
        agent_ready=leg.agent_ready,
    )


def current_leg(db: Session, session_id: str) -> LegPublic | None:
    """The session's latest leg, whatever its state (for the agent's page and supervisors)."""
    query = select(CallLeg).where(CallLeg.session_id == session_id).order_by(col(CallLeg.created_at).desc())
    leg = db.exec(query).first()
    return public(leg) if leg else None


def session_legs(db: Session, session_ids: list[str]) -> dict[str, LegPublic]:
    """Latest leg per session for a wall of seats; sessions without a leg are absent."""
    query = select(CallLeg).where(col(CallLeg.session_id).in_(session_ids)).order_by(col(CallLeg.created_at))
    return {leg.session_id: public(leg) for leg in db.exec(query)}
