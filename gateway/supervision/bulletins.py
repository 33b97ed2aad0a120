"""Bulletins and short knowledge notes that supervisors post and home agents read on the portal."""

from datetime import datetime, timedelta

from sqlmodel import Session, col, or_, select

from gateway.audit.service import record
from gateway.db import fits_column
from gateway.errors import NotFound
from gateway.sessions.models import HomeSession
from gateway.sessions.service import policy_groups
from gateway.supervision.errors import InvalidBulletin
from gateway.supervision.models import Bulletin

KINDS = ("bulletin", "note")
PRIORITIES = ("normal", "urgent")
MAX_VALID_HOURS = 24 * 90
TITLE_MAX, BODY_MAX = 200, 4000


def _checked(kind: str, title: str, body: str, priority: str, valid_hours: str) -> tuple[str, str, float | None]:
    """The title and text trimmed and the validity in hours (None: until removed), or the refusal a person reads."""
    title, body = title.strip(), body.strip()
    if kind not in KINDS:
        raise InvalidBulletin(f"kind must be one of {', '.join(KINDS)}", key="bulletin_kind")
    if priority not in PRIORITIES:
        raise InvalidBulletin(f"priority must be one of {', '.join(PRIORITIES)}", key="bulletin_priority")
    if not title or len(title) > TITLE_MAX or not body or len(body) > BODY_MAX:
        raise InvalidBulletin(
            f"a title (up to {TITLE_MAX} characters) and a text (up to {BODY_MAX}) are needed",
            key="bulletin_text",
            title_max=TITLE_MAX,
            body_max=BODY_MAX,
        )
    hours = valid_hours.strip()
    if not hours:
        return title, body, None
    try:
        parsed = float(hours)
    except ValueError:
        parsed = -1.0
    if not 0 < parsed <= MAX_VALID_HOURS:
        raise InvalidBulletin(
            f"valid for must be a number of hours above 0, up to {MAX_VALID_HOURS}",
            key="bulletin_hours",
            max=MAX_VALID_HOURS,
        )
    return title, body, parsed


def post_bulletin(
    db: Session,
    *,
    kind: str,
    title: str,
    body: str,
    author: str,
    now: datetime,
    valid_hours: str = "",
    source: str = "",
    priority: str = "normal",
    audience: str = "",
) -> Bulletin:
    title, body, hours = _checked(kind, title, body, priority, valid_hours)
    audience = fits_column(audience.strip(), Bulletin, "audience")
    expires_at = now + timedelta(hours=hours) if hours else None
    bulletin = Bulletin(
        kind=kind,
        title=title,
        body=body,
        author=author,
        created_at=now,
        expires_at=expires_at,
        priority=priority,
        audience=audience,
    )
    db.add(bulletin)
    db.flush()
    record(db, actor=author, source=source, action="supervision.bulletin.post", outcome=kind, target=title[:100])
    return bulletin


def edit_bulletin(
    db: Session,
    bulletin_id: int,
    *,
    title: str,
    body: str,
    priority: str,
    audience: str,
    valid_hours: str,
    editor: str,
    now: datetime,
    source: str = "",
) -> Bulletin:
    """Change a bulletin's words, priority, audience or expiry (counted from now); audited."""
    bulletin = _live(db, bulletin_id)
    audience = fits_column(audience.strip(), Bulletin, "audience")
    bulletin.title, bulletin.body, hours = _checked(bulletin.kind, title, body, priority, valid_hours)
    bulletin.priority, bulletin.audience, bulletin.updated_at = priority, audience, now
    bulletin.expires_at = now + timedelta(hours=hours) if hours else None
    db.add(bulletin)
    db.flush()
    record(
        db, actor=editor, source=source, action="supervision.bulletin.edit", outcome="saved", target=str(bulletin_id)
    )
    return bulletin


def remove_bulletin(db: Session, bulletin_id: int, *, editor: str, now: datetime, source: str = "") -> None:
    """Take a bulletin off every agent's page; the row stays, marked removed, for the record."""
    bulletin = _live(db, bulletin_id)
    bulletin.removed_at = now
    db.add(bulletin)
    db.flush()
    record(
        db,
        actor=editor,
        source=source,
        action="supervision.bulletin.remove",
        outcome="removed",
        target=str(bulletin_id),
    )


def _live(db: Session, bulletin_id: int) -> Bulletin:
    bulletin = db.get(Bulletin, bulletin_id)
    if bulletin is None or bulletin.removed_at is not None:
        raise NotFound(f"no bulletin {bulletin_id}", key="bulletin_unknown")
    return bulletin


def current_bulletins(
    db: Session, now: datetime, kind: str | None = None, groups: list[str] | None = None, *, urgent: bool = False
) -> list[Bulletin]:
    """Bulletins neither expired nor removed, newest first; with ``groups``, only those for everyone or for one of
    them (an agent's view); with ``urgent``, only the urgent ones (the seat's status bar)."""
    query = select(Bulletin).where(
        or_(col(Bulletin.expires_at).is_(None), col(Bulletin.expires_at) > now), col(Bulletin.removed_at).is_(None)
    )
    if kind is not None:
        query = query.where(Bulletin.kind == kind)
    if groups is not None:
        query = query.where(or_(Bulletin.audience == "", col(Bulletin.audience).in_(groups)))
    if urgent:
        query = query.where(Bulletin.priority == "urgent")
    return list(db.exec(query.order_by(col(Bulletin.created_at).desc()).limit(50)).all())


def audience_of(session: HomeSession) -> list[str]:
    """The audiences a session's bulletins may name: each of its groups as the directory names it (a DN) and by
    its first RDN's value (``CN=Night shift,…`` → ``Night shift``), which is what a supervisor types."""
    names: list[str] = []
    for group in policy_groups(session):
        names.append(group)
        first = group.split(",", 1)[0]
        if "=" in first:
            names.append(first.split("=", 1)[1])
    return names
