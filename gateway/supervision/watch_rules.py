"""Which watch a supervisor's one-time view launch belongs to (X11 view tokens and Guacamole read-only joins alike)."""

from datetime import datetime

from sqlmodel import Session, col, select

from gateway.supervision.models import ScreenWatch


def open_watch(db: Session, supervisor: str, agent_session_id: str, minted_at: datetime) -> ScreenWatch | None:
    """The watch the token was minted for, if it is still open.

    `start_watch` takes its time before it asks for the link, and the next watch starts after it, so the
    token belongs to the newest watch of this supervisor and agent that started no later than the token
    (open or not: a token of a stopped watch must not slip into an older one still open).
    """
    query = (
        select(ScreenWatch)
        .where(
            ScreenWatch.supervisor == supervisor,
            ScreenWatch.session_id == agent_session_id,
            col(ScreenWatch.started_at) <= minted_at,
        )
        .order_by(col(ScreenWatch.started_at).desc(), col(ScreenWatch.id).desc())
    )
    watch = db.exec(query).first()
    return watch if watch is not None and watch.ended_at is None else None
