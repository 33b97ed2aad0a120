"""An unconfirmed TOTP secret belongs to the sign-in that made it, whoever the person is (not only a privileged one).

A second sign-in with the password alone — someone who knows a supervisor's password, while the supervisor enrols
or before they ever do — is never shown the secret the owner's phone is given and cannot confirm it: it gets a
secret of its own, which replaces the first, so the owner's code no longer confirms anything.
"""

from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import Engine
from sqlmodel import col, select

from gateway.audit.models import AuditEvent
from gateway.db import session_scope
from gateway.sessions import totp
from gateway.sessions.login import LoginServices, complete_second_factor
from gateway.sessions.models import HomeSession, TotpSecret
from gateway.sessions.totp import SecondFactorRefused
from tests.gateway.sessions.second_factor_sign_ins import LIMITS, T0, login_services, pending_session


@pytest.fixture
def services(tmp_path: Path, engine: Engine) -> Iterator[LoginServices]:
    with login_services(tmp_path, engine) as running:
        yield running


def enrolment_page(engine: Engine, session: HomeSession) -> str:
    """The secret the enrolment page shows this session."""
    with session_scope(engine) as db:
        return totp.enrolment(db, session, T0).secret


def submit(engine: Engine, session: HomeSession, secret: str) -> str:
    """The second-factor form with the current code of ``secret``; a refusal commits its rows, as the route's."""
    with session_scope(engine) as db:
        try:
            complete_second_factor(db, session, pyotp.TOTP(secret).at(T0), limits=LIMITS, now=T0)
        except SecondFactorRefused as refused:
            return refused.reason
    return "accepted"


def test_a_second_sign_in_gets_its_own_secret_and_the_first_one_no_longer_confirms(
    engine: Engine, services: LoginServices
) -> None:
    owner, other = pending_session(engine, services, "sup1"), pending_session(engine, services, "sup1")
    owners = enrolment_page(engine, owner)
    assert enrolment_page(engine, owner) == owners  # the owner reloading the page keeps theirs
    others = enrolment_page(engine, other)
    assert others != owners
    assert submit(engine, other, owners) == "second_factor_refused"  # not the owner's secret, nor confirms it
    assert submit(engine, owner, owners) == "second_factor_refused"  # replaced by the other sign-in's
    assert submit(engine, owner, others) == "second_factor_refused"  # made for the other sign-in
    assert submit(engine, other, others) == "accepted"
    with session_scope(engine) as db:
        enrolled = db.get_one(TotpSecret, owner.person_id)
        refusals = db.exec(
            select(AuditEvent.target)
            .where(AuditEvent.action == "session.second_factor", AuditEvent.outcome == "refused")
            .order_by(col(AuditEvent.seq))
        ).all()
    assert enrolled.secret == others and enrolled.confirmed_at is not None
    assert refusals == [other.id, owner.id, owner.id]  # every refusal audited
