"""TOTP second factor (RFC 6238): enrolment with a QR code, verification that never accepts a code twice.

One secret per person (the directory's stable id), whichever spelling they signed in with: a second spelling is
offered the code prompt, never a fresh enrolment. An unconfirmed secret is shown to, and confirmed by, only the
session it was made for. A privileged person's first enrolment (and one after a reset), and anyone's made
without a certificate, needs an enrolment code besides the password (``sessions/enrolment_codes.py``): the secret
is then made for the session that redeemed it.
"""

import io
from datetime import datetime

import pyotp
import segno
from sqlalchemy import CursorResult, update
from sqlmodel import Session, col

from gateway.errors import GatewayError
from gateway.sessions.errors import EnrolmentCodeRequired, SecondFactorRefused
from gateway.sessions.models import HomeSession, TotpSecret
from gateway.sessions.recovery_codes import looks_like_recovery_code, redeem

ISSUER = "SOHO Gateway"
STEP_SECONDS = 30
PRIVILEGED_ROLES = frozenset({"security_admin", "hr"})
"""Roles whose first second-factor enrolment needs an enrolment code, not the password alone."""


def needs_enrolment_code(session: HomeSession) -> bool:
    """A password alone never enrols a second factor: a sign-in without a certificate needs an enrolment code for
    the first enrolment, as a privileged person always does (else whoever learnt a supervisor's password could
    enrol their own phone before the supervisor did, and keep it)."""
    return bool(session.role_set & PRIVILEGED_ROLES) or session.cert_fingerprint is None


def enrolment(db: Session, session: HomeSession, now: datetime) -> TotpSecret:
    """The unconfirmed secret of this session; a confirmed one is never handed out again.

    An unconfirmed secret is shown to, and confirmed by, only the session that made it: a second sign-in with the
    password alone (the owner's, or someone who knows the password) never sees the secret the owner's phone is
    being given. Another session gets a fresh secret of its own, which replaces the first (that session's code then
    no longer matches). A privileged person's secret is made by redeeming an enrolment code instead."""
    secret = db.get(TotpSecret, session.person_id)
    if secret is not None and secret.confirmed_at is not None:
        raise GatewayError("a second factor is already enrolled for this account; ask an admin to reset it")
    if secret is not None and secret.enrolling_session == session.id:
        return secret
    if needs_enrolment_code(session):
        raise EnrolmentCodeRequired("enter the enrolment code a security administrator gave you")
    return start_enrolment(db, session, now)


def start_enrolment(db: Session, session: HomeSession, now: datetime) -> TotpSecret:
    """A fresh unconfirmed secret for this session, replacing any other session's (for a privileged person: after
    an enrolment code was redeemed for it)."""
    secret = db.get(TotpSecret, session.person_id)
    if secret is not None and secret.confirmed_at is not None:
        raise GatewayError("a second factor is already enrolled for this account; ask an admin to reset it")
    if secret is None:
        secret = TotpSecret(person_id=session.person_id, login=session.login, secret="", created_at=now)
    secret.secret, secret.created_at, secret.enrolling_session = pyotp.random_base32(), now, session.id
    db.add(secret)
    db.flush()
    return secret


def provisioning_uri(secret: TotpSecret) -> str:
    """The ``otpauth://totp/…`` URI authenticator apps read (from the QR code, or as a link on a phone)."""
    return str(pyotp.TOTP(secret.secret).provisioning_uri(name=secret.login, issuer_name=ISSUER))


def provisioning_qr_svg(secret: TotpSecret) -> str:
    """The URI as an SVG QR code that scales to its box: ``omitsize`` gives it a viewBox instead of a fixed width
    and height, so CSS can size it without clipping; the quiet zone (4 modules) is kept for scanners."""
    buffer = io.BytesIO()
    segno.make(provisioning_uri(secret), error="m").save(
        buffer, kind="svg", scale=1, border=4, xmldecl=False, svgns=True, omitsize=True, svgclass="totp-qr"
    )
    return buffer.getvalue().decode()


def is_enrolled(db: Session, person_id: str) -> bool:
    secret = db.get(TotpSecret, person_id)
    return secret is not None and secret.confirmed_at is not None


def verify(db: Session, session: HomeSession, code: str, now: datetime) -> bool:
    """Accept the code of the current or the previous step (clock drift), once; confirm a pending enrolment — only
    from the session the unconfirmed secret was made for. Once enrolled, one of the person's recovery codes is
    accepted instead (once). True when this call confirmed a new enrolment."""
    secret = db.get(TotpSecret, session.person_id)
    if secret is None:
        raise SecondFactorRefused("no second factor is enrolled for this account")
    if secret.confirmed_at is None and secret.enrolling_session != session.id:
        if needs_enrolment_code(session):
            raise SecondFactorRefused("enter the enrolment code a security administrator gave you first")
        raise SecondFactorRefused("another sign-in started an enrolment; scan the code this page shows now")
    code = code.strip().replace(" ", "")
    totp = pyotp.TOTP(secret.secret)
    step = int(now.timestamp()) // STEP_SECONDS
    for candidate in (step, step - 1):
        if candidate > secret.last_used_step and totp.verify(code, for_time=candidate * STEP_SECONDS):
            newly_confirmed = secret.confirmed_at is None
            if _use_step(db, secret, session, candidate, now):
                return newly_confirmed
            break  # the same code was just used by another submission, or the secret replaced meanwhile
    else:
        if secret.confirmed_at is not None and looks_like_recovery_code(code) and redeem(db, session, code, now):
            return False
    raise SecondFactorRefused("the code is wrong or was already used; wait for the next code")


def _use_step(db: Session, secret: TotpSecret, session: HomeSession, step: int, now: datetime) -> bool:
    """Record ``step`` as used (and confirm a pending enrolment) only if the row is still as read: no later step
    used, the same secret, still (un)confirmed — for an enrolment, still this session's. One conditional UPDATE that
    must change one row, so of two submissions of one code at the same moment only one is accepted (PostgreSQL
    re-checks the condition on the row the other committed; SQLite's one writer makes them take turns)."""
    still_as_read = [
        col(TotpSecret.person_id) == secret.person_id,
        col(TotpSecret.secret) == secret.secret,
        col(TotpSecret.last_used_step) < step,
    ]
    values: dict[str, object] = {"last_used_step": step}
    if secret.confirmed_at is None:
        still_as_read += [col(TotpSecret.confirmed_at).is_(None), col(TotpSecret.enrolling_session) == session.id]
        values.update(confirmed_at=now, enrolling_session=None)
    else:
        still_as_read.append(col(TotpSecret.confirmed_at).is_not(None))
    used: CursorResult[tuple[()]] = db.execute(  # type: ignore[assignment]
        update(TotpSecret).where(*still_as_read).values(**values).execution_options(synchronize_session=False)
    )
    db.expire(secret)  # whatever happened, later reads in this transaction see the row as it now is
    return used.rowcount == 1


def reset(db: Session, person_id: str) -> bool:
    """Forget the person's secret (lost phone); True if there was one. The next enrolment starts from scratch."""
    secret = db.get(TotpSecret, person_id)
    if secret is None:
        return False
    db.delete(secret)
    db.flush()
    return True
