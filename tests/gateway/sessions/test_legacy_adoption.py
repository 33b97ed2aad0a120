"""Rows from before migration 0008 (keyed by the name as typed) are carried over and adopted at the next sign-in:
the enrolled TOTP secret stays the person's (no fresh enrolment), and a live legacy session counts for the
one-live-session rule."""

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import Engine, text
from sqlmodel import select

from gateway.db import make_engine, session_scope
from gateway.migrate import upgrade
from gateway.sessions.models import HomeSession, SessionState, TotpSecret
from tests.gateway.sessions.conftest import GROUPS, PASSWORDS, Portal, csrf_of, sign_in
from tests.support.portal import passed_second_factor, serving_portal
from tests.support.postgres import create_database

HTML = {"accept": "text/html"}
LEGACY_SECRET = pyotp.random_base32()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def legacy_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A database at revision 0007 holding admin1's TOTP secret and a live session, both under other spellings;
    then migrated to the newest revision."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'legacy.db'}"
    else:
        url = create_database(request.getfixturevalue("postgres_admin_url"), f"sohogw_legacy_{uuid.uuid4().hex[:8]}")
    upgrade(url, "0007")
    engine = make_engine(url)
    now = datetime.now(UTC)
    with session_scope(engine) as db:
        db.execute(
            text(
                "INSERT INTO totp_secret (login, secret, created_at, confirmed_at, last_used_step) "
                "VALUES ('ADMIN1', :secret, :now, :now, 0)"
            ),
            {"secret": LEGACY_SECRET, "now": now - timedelta(days=30)},
        )
        db.execute(
            text(
                "INSERT INTO home_session (id, token_sha256, csrf_token, state, login, user_dn, roles, groups, "
                "second_factor, source_ip, user_agent, node, created_at, last_seen_at, last_checked_at, "
                "idle_timeout_seconds, expires_at) VALUES ('legacy1', 'x', 'y', 'ACTIVE', 'Admin1', 'Admin1', "
                "'security_admin', '[]', true, '203.0.113.5', '', 'old', :now, :now, :now, 3600, :until)"
            ),
            {"now": now, "until": now + timedelta(hours=1)},
        )
    upgrade(url)
    yield engine
    engine.dispose()


def test_a_legacy_totp_secret_and_live_session_are_adopted_at_the_next_sign_in(
    tmp_path: Path, legacy_engine: Engine
) -> None:
    url = legacy_engine.url.render_as_string(hide_password=False)
    with (
        serving_portal(
            tmp_path, url, legacy_engine, kind=Portal, passwords=PASSWORDS, groups=GROUPS, trusted_proxy=True
        ) as portal,
        portal.client() as admin,
    ):
        assert sign_in(admin, "admin1").headers["location"] == "/login/second-factor"
        page = admin.get("/login/second-factor", headers=HTML)
        assert 'id="code"' in page.text and "totp-secret" not in page.text and "enrolment-code" not in page.text
        code = pyotp.TOTP(LEGACY_SECRET).now()
        done = admin.post("/login/second-factor", data={"code": code, "csrf": csrf_of(page)}, headers=HTML)
        assert passed_second_factor(done), done.text
    with session_scope(legacy_engine) as db:
        secrets = db.exec(select(TotpSecret)).all()
        legacy = db.get(HomeSession, "legacy1")
    assert [(s.person_id, s.secret) for s in secrets] == [("builtin:admin1", LEGACY_SECRET)]
    assert legacy is not None and legacy.person_id == "builtin:admin1"
    assert (legacy.state, legacy.end_reason) == (SessionState.ENDING, "replaced_by_new_login")
    assert legacy.ended_by == "admin1"
