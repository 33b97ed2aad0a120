"""Recovery codes: one-time codes a person may type instead of a TOTP code when the phone is lost or wiped.

Ten are made when a second factor is enrolled (a new enrolment replaces them) and shown once on the "enrolled"
page; only their SHA-256 is stored. Each works once; every use and every refusal of something that looked like a
recovery code is audited (``totp.recovery_code``), and a wrong one counts against the sign-in throttle like a
wrong TOTP code (the caller's throttle reservation covers both).
"""

import base64
import hashlib
import secrets
from datetime import datetime

from sqlalchemy import CursorResult, update
from sqlmodel import Session, col, delete, select

from gateway.audit.service import record
from gateway.sessions.models import HomeSession, TotpRecoveryCode

COUNT = 10


def _normalized(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def _digest(code: str) -> str:
    return hashlib.sha256(_normalized(code).encode()).hexdigest()


def looks_like_recovery_code(code: str) -> bool:
    """A TOTP code is six digits; anything with a letter or of recovery-code length is tried as a recovery code."""
    normalized = _normalized(code)
    return len(normalized) == 12 and not normalized.isdigit()


def _new_code() -> str:
    text = base64.b32encode(secrets.token_bytes(8)).decode()[:12]  # 60 bits
    return "-".join(text[i : i + 4] for i in range(0, 12, 4))


def replace_codes(db: Session, session: HomeSession, now: datetime) -> list[str]:
    """Forget the person's earlier codes and make ``COUNT`` new ones; the codes are returned once, never stored."""
    db.exec(delete(TotpRecoveryCode).where(col(TotpRecoveryCode.person_id) == session.person_id))
    codes = [_new_code() for _ in range(COUNT)]
    for code in codes:
        db.add(TotpRecoveryCode(person_id=session.person_id, code_sha256=_digest(code), created_at=now))
    db.flush()
    record(
        db,
        actor=session.login,
        source=session.source_ip,
        action="totp.recovery_code",
        target=session.login,
        outcome="issued",
        detail={"count": COUNT, "person": session.person_id},
    )
    return codes


def redeem(db: Session, session: HomeSession, code: str, now: datetime) -> bool:
    """Spend one of the person's unused codes; False (audited) when ``code`` is none of them, or was spent by a
    submission at the same moment. The spending UPDATE requires the code still unused and must change one row:
    PostgreSQL re-checks ``used_at`` on the row the other transaction committed, SQLite's one writer makes the two
    take turns, so only one of two submissions of one code gets in."""
    row_id = db.exec(
        select(TotpRecoveryCode.id).where(
            TotpRecoveryCode.person_id == session.person_id,
            TotpRecoveryCode.code_sha256 == _digest(code),
            col(TotpRecoveryCode.used_at).is_(None),
        )
    ).first()
    used = row_id is not None and _spend(db, row_id, now)
    record(
        db,
        actor=session.login,
        source=session.source_ip,
        action="totp.recovery_code",
        target=session.login,
        outcome="used" if used else "refused",
        detail={"person": session.person_id, "left": remaining(db, session.person_id)},
    )
    return used


def _spend(db: Session, row_id: int, now: datetime) -> bool:
    """Mark the code used if it still is; True when this call did."""
    spent: CursorResult[tuple[()]] = db.execute(  # type: ignore[assignment]
        update(TotpRecoveryCode)
        .where(col(TotpRecoveryCode.id) == row_id, col(TotpRecoveryCode.used_at).is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    return spent.rowcount == 1


def remaining(db: Session, person_id: str) -> int:
    rows = db.exec(
        select(TotpRecoveryCode.id).where(
            TotpRecoveryCode.person_id == person_id, col(TotpRecoveryCode.used_at).is_(None)
        )
    ).all()
    return len(rows)
