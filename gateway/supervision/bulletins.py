"""Bulletins and short knowledge notes that supervisors post and home agents read on the portal."""

from datetime import datetime, timedelta

from sqlmodel import Session, col, or_, select

from gateway.audit.service import record
from gateway.errors import GatewayError
from gateway.supervision.models import Bulletin

KINDS = ("bulletin", "note")
TITLE_MAX, BODY_MAX = 200, 4000


class InvalidBulletin(GatewayError):
    status_code = 422
    reason = "invalid_bulletin"


def post_bulletin(
    db: Session,
    *,
    kind: str,
    title: str,
    body: str,
    author: str,
    now: datetime,
    valid_hours: float | None = None,
    source: str = "",
) -> Bulletin:
    title, body = title.strip(), body.strip()
    if kind not in KINDS:
        raise InvalidBulletin(f"kind must be one of {', '.join(KINDS)}")
    if not title or len(title) > TITLE_MAX or not body or len(body) > BODY_MAX:
        raise InvalidBulletin(f"a title (up to {TITLE_MAX} characters) and a text (up to {BODY_MAX}) are needed")
    expires_at = now + timedelta(hours=valid_hours) if valid_hours else None
    bulletin = Bulletin(kind=kind, title=title, body=body, author=author, created_at=now, expires_at=expires_at)
    db.add(bulletin)
    db.flush()
    record(db, actor=author, source=source, action="supervision.bulletin.post", outcome=kind, target=title[:100])
    return bulletin


def current_bulletins(db: Session, now: datetime, kind: str | None = None) -> list[Bulletin]:
    """Bulletins not yet expired, newest first."""
    query = select(Bulletin).where(or_(col(Bulletin.expires_at).is_(None), col(Bulletin.expires_at) > now))
    if kind is not None:
        query = query.where(Bulletin.kind == kind)
    return list(db.exec(query.order_by(col(Bulletin.created_at).desc()).limit(50)).all())
