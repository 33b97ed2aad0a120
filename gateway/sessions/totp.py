"""TOTP second factor (RFC 6238): enrolment with a QR code, verification that never accepts a code twice."""

import io
from datetime import datetime

import pyotp
import segno
from sqlmodel import Session

from gateway.errors import GatewayError
from gateway.sessions.models import TotpSecret

ISSUER = "SOHO Gateway"
STEP_SECONDS = 30


class SecondFactorRefused(GatewayError):
    status_code = 401
    reason = "second_factor_refused"


def enrolment(db: Session, login: str, now: datetime) -> TotpSecret:
    """The person's secret, created unconfirmed on first call; a confirmed one is never handed out again."""
    secret = db.get(TotpSecret, login)
    if secret is None:
        secret = TotpSecret(login=login, secret=pyotp.random_base32(), created_at=now)
        db.add(secret)
        db.flush()
    if secret.confirmed_at is not None:
        raise GatewayError("a second factor is already enrolled for this account; ask an admin to reset it")
    return secret


def provisioning_qr_svg(secret: TotpSecret) -> str:
    uri = pyotp.TOTP(secret.secret).provisioning_uri(name=secret.login, issuer_name=ISSUER)
    buffer = io.BytesIO()
    segno.make(uri, error="m").save(buffer, kind="svg", scale=5, xmldecl=False, svgns=True)
    return buffer.getvalue().decode()


def is_enrolled(db: Session, login: str) -> bool:
    secret = db.get(TotpSecret, login)
    return secret is not None and secret.confirmed_at is not None


def verify(db: Session, login: str, code: str, now: datetime) -> None:
    """Accept the code of the current or the previous step (clock drift), once; confirm a pending enrolment."""
    secret = db.get(TotpSecret, login)
    if secret is None:
        raise SecondFactorRefused("no second factor is enrolled for this account")
    code = code.strip().replace(" ", "")
    totp = pyotp.TOTP(secret.secret)
    step = int(now.timestamp()) // STEP_SECONDS
    for candidate in (step, step - 1):
        if candidate > secret.last_used_step and totp.verify(code, for_time=candidate * STEP_SECONDS):
            secret.last_used_step = candidate
            if secret.confirmed_at is None:
                secret.confirmed_at = now
            db.add(secret)
            db.flush()
            return
    raise SecondFactorRefused("the code is wrong or was already used; wait for the next code")
