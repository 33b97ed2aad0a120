"""One-time launch tokens: minted with a lease, spent by the first attempt, refused and audited otherwise.

The token travels in the seat page's websocket URL; only its SHA-256 is stored. The first redemption
attempt burns it, whoever makes it (an atomic ``UPDATE … WHERE used_at IS NULL``, so two racing
attempts cannot both win on SQLite or PostgreSQL), and only then are expiry, person and session
checked: a thief's attempt leaves the token useless to everyone, and the agent relaunches.

A token has a mode: ``interactive`` (the agent's own seat page) or ``view`` (a supervisor's watch,
`gateway.supervision.viewing`). Each websocket spends only its own mode, so a watch token can never open the
path that authenticates with the seat's full-access password.
"""

import hashlib
import secrets
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from gateway.audit.service import record
from gateway.clock import as_utc
from gateway.seats.errors import LaunchRefused
from gateway.seats.models import LaunchToken, SeatLease, SeatLeaseState
from gateway.sessions.models import HomeSession

INTERACTIVE = "interactive"
VIEW = "view"
ExtraCheck = Callable[[LaunchToken, SeatLease, HomeSession], str | None]
"""A further refusal reason for a token that passed the common checks, or None."""


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def mint(
    db: Session, lease: SeatLease, session: HomeSession, now: datetime, lifetime: timedelta, mode: str = INTERACTIVE
) -> str:
    """A fresh token for `session` to open `lease`'s seat once within `lifetime`; returns the token itself."""
    token = secrets.token_urlsafe(32)
    db.add(
        LaunchToken(
            id=uuid.uuid4().hex,
            token_sha256=token_sha256(token),
            backend=lease.backend,
            mode=mode,
            lease_id=lease.id,
            session_id=session.id,
            login=session.login,
            seat_id=lease.seat_id,
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    db.flush()
    return token


def spend(
    db: Session,
    token: str,
    session: HomeSession | None,
    now: datetime,
    source: str,
    *,
    mode: str = INTERACTIVE,
    check: ExtraCheck | None = None,
) -> SeatLease:
    """The lease a token of `mode` opens for this session; `LaunchRefused` (audited) for anything else."""
    who = session.login if session is not None else "anonymous"
    row = db.exec(select(LaunchToken).where(LaunchToken.token_sha256 == token_sha256(token))).first()
    lease = db.get(SeatLease, row.lease_id) if row is not None and row.lease_id else None
    reason = _refusal(db, row, lease, session, now, who, mode)
    if reason is None and check is not None:
        assert row is not None and lease is not None and session is not None
        reason = check(row, lease, session)
    if reason is not None:
        record(
            db,
            actor=who,
            source=source,
            action="seat.connect",
            target=row.seat_id if row else "",
            outcome="refused",
            detail={
                "reason": reason,
                "token_of": row.login if row else None,
                "session": session.id if session else None,
                "mode": mode,
                "person": session.person_id if session else None,
            },
        )
        raise LaunchRefused(f"this seat link cannot be used: {reason}; start the app again from the portal")
    assert lease is not None
    record(
        db,
        actor=who,
        source=source,
        action="seat.connect",
        target=lease.seat_id,
        outcome="success",
        detail={"lease": lease.id, "app": lease.app_id, "mode": mode, "person": session.person_id if session else None},
    )
    return lease


def _refusal(
    db: Session,
    row: LaunchToken | None,
    lease: SeatLease | None,
    session: HomeSession | None,
    now: datetime,
    who: str,
    mode: str,
) -> str | None:
    if row is None:
        return "unknown or altered token"
    burnt = db.execute(
        update(LaunchToken)
        .where(col(LaunchToken.id) == row.id, col(LaunchToken.used_at).is_(None))
        .values(used_at=now, used_by=who)
    )
    if burnt.rowcount != 1:  # type: ignore[attr-defined]
        return "token already used"
    if now >= as_utc(row.expires_at):
        return "token expired"
    if row.mode != mode:
        return f"token is for the {row.mode} path, not the {mode} path"
    if session is None or session.id != row.session_id or session.login != row.login:
        return "token was issued to another person or session"
    if lease is None or lease.state is SeatLeaseState.ENDED:
        return "the seat has ended"
    return None
