"""Enrolment codes: what a privileged person needs, besides the password, to enrol (or re-enrol) a second factor.

A stolen password alone must not let anyone bind their own authenticator to a security admin's (or HR's) account.
So their first enrolment, and the one after a reset, needs a code issued by another security admin (a page) or by
``sohogw totp issue-code`` on the host. A code is random (80 bits, base32 in groups of four), stored only as its
SHA-256, names one person, expires, works once, and every issue, use and refusal is audited.
"""

import base64
import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import CursorResult, update
from sqlmodel import Session, col, select

from gateway.audit.service import record
from gateway.clock import as_utc
from gateway.directory import Account, Directory
from gateway.directory.errors import AccountNotFound, DirectoryError, MalformedLogin
from gateway.errors import Forbidden, NotFound, Unavailable
from gateway.sessions import throttle, totp
from gateway.sessions.errors import EnrolmentCodeRefused, TooManyAttempts
from gateway.sessions.models import HomeSession, TotpEnrolmentCode, TotpSecret

CODE_LIFETIME = timedelta(hours=24)


def _normalized(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def _digest(code: str) -> str:
    return hashlib.sha256(_normalized(code).encode()).hexdigest()


def new_code() -> str:
    text = base64.b32encode(secrets.token_bytes(10)).decode()
    return "-".join(text[i : i + 4] for i in range(0, len(text), 4))


def issue(
    db: Session,
    account: Account,
    *,
    issued_by: str,
    issuer_person_id: str | None,
    now: datetime,
    reset: bool = False,
    source: str = "",
) -> str:
    """A new code for ``account`` (with ``reset``: its enrolled secret is forgotten first); returns the code, which
    is shown once and never stored. A security admin cannot issue one for themselves (``issuer_person_id``; None is
    the host's CLI)."""
    if issuer_person_id is not None and issuer_person_id == account.person_id:
        record(
            db,
            actor=issued_by,
            source=source,
            action="totp.enrolment_code",
            target=account.name,
            outcome="refused_self",
            detail={"person": account.person_id},
        )
        raise Forbidden("another security administrator must issue your own enrolment code")
    forgotten = totp.reset(db, account.person_id) if reset else False
    code = new_code()
    db.add(
        TotpEnrolmentCode(
            code_sha256=_digest(code),
            person_id=account.person_id,
            login=account.name,
            issued_by=issued_by,
            issued_at=now,
            expires_at=now + CODE_LIFETIME,
        )
    )
    db.flush()
    record(
        db,
        actor=issued_by,
        source=source,
        action="totp.enrolment_code",
        target=account.name,
        outcome="issued",
        detail={"person": account.person_id, "reset": reset, "secret_forgotten": forgotten},
        clock=lambda: now,
    )
    return code


def find_account(directory: Directory, login: str) -> Account:
    """The account a security admin or the host names, in any spelling the directory accepts."""
    try:
        return directory.find_account(login)
    except (AccountNotFound, MalformedLogin):  # no account has it, or none can
        raise NotFound(f"no account is named {login!r} in the directory") from None
    except DirectoryError as error:
        raise Unavailable(error.user_message) from None


def redeem(
    db: Session, session: HomeSession, code: str, *, limits: throttle.ThrottleLimits, now: datetime
) -> TotpSecret:
    """Use a code for the session's person: a fresh unconfirmed secret that only this session is shown. Each try
    spends one of the person's attempts, as a second-factor code does; a try over the limit is refused and audited
    as a wrong code is (the route renders the refusal, so its row commits)."""
    keys = [(throttle.person_key(session.person_id), limits.per_account)]
    try:
        throttle.reserve(db, keys, now, limits, "too many wrong codes; wait a few minutes and sign in again")
    except TooManyAttempts as error:
        _audit(db, session, error.reason)
        raise
    row = db.exec(select(TotpEnrolmentCode).where(TotpEnrolmentCode.code_sha256 == _digest(code))).first()
    problem = None
    if row is None or row.person_id != session.person_id:
        problem = "unknown"
    elif row.used_at is not None:
        problem = "used"
    elif now >= as_utc(row.expires_at):
        problem = "expired"
    elif not _spend(db, row, session, now):
        problem = "used"  # by a submission of the same code at the same moment
    if problem is not None or row is None:
        _audit(db, session, f"refused_{problem}")
        raise EnrolmentCodeRefused("this enrolment code is wrong, used or expired; ask for a new one")
    secret = totp.start_enrolment(db, session, now)
    _audit(db, session, "redeemed", issued_by=row.issued_by)
    return secret


def _spend(db: Session, row: TotpEnrolmentCode, session: HomeSession, now: datetime) -> bool:
    """Mark the code used by ``session`` if it still is unused; True when this call did. One conditional UPDATE that
    must change one row: PostgreSQL re-checks ``used_at`` on the row a concurrent redemption committed, SQLite's one
    writer makes the two take turns, so a code is redeemed once however many submit it at once."""
    spent: CursorResult[tuple[()]] = db.execute(  # type: ignore[assignment]
        update(TotpEnrolmentCode)
        .where(col(TotpEnrolmentCode.id) == row.id, col(TotpEnrolmentCode.used_at).is_(None))
        .values(used_at=now, used_by_session=session.id)
        .execution_options(synchronize_session=False)
    )
    return spent.rowcount == 1


def _audit(db: Session, session: HomeSession, outcome: str, **detail: str) -> None:
    record(
        db,
        actor=session.login,
        source=session.source_ip,
        action="totp.enrolment_code",
        target=session.id,
        outcome=outcome,
        detail={"person": session.person_id, **detail},
    )
