"""A password alone never enrols a second factor, and an unconfirmed TOTP secret belongs to the sign-in that made it.

Someone who knows a supervisor's password, while the supervisor enrols or before they ever do, is asked for an
enrolment code (a sign-in without a certificate needs one for a first enrolment, as a privileged person always
does). A second sign-in that did present the person's certificate is never shown the secret the owner's phone is
given and cannot confirm it: it gets a secret of its own, which replaces the first, so the owner's code no longer
confirms anything.
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
from gateway.sessions.errors import EnrolmentCodeRequired, SecondFactorRefused
from gateway.sessions.login import LoginServices, complete_second_factor
from gateway.sessions.models import HomeSession, TotpSecret
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


def with_certificate(engine: Engine, session: HomeSession) -> HomeSession:
    """The session as a sign-in that presented the person's certificate leaves it (the login records its
    fingerprint); what the certificate proves is tested with the login, not here."""
    with session_scope(engine) as db:
        row = db.get_one(HomeSession, session.id)
        row.cert_fingerprint = "ab" * 32
        db.add(row)
        db.flush()
        db.refresh(row)
        db.expunge(row)
    return row


def test_a_password_alone_is_asked_for_an_enrolment_code(engine: Engine, services: LoginServices) -> None:
    session = pending_session(engine, services, "sup1")
    with session_scope(engine) as db, pytest.raises(EnrolmentCodeRequired):
        totp.enrolment(db, session, T0)
    with session_scope(engine) as db:
        assert db.get(TotpSecret, session.person_id) is None  # nothing was made for it


def test_a_second_sign_in_gets_its_own_secret_and_the_first_one_no_longer_confirms(
    engine: Engine, services: LoginServices
) -> None:
    owner, other = (with_certificate(engine, pending_session(engine, services, "sup1")) for _ in range(2))
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
