"""Callback numbers and VPN addresses from before migration 0012 (held by the account name) get the person of the
newest session of their name, or ``legacy:<name>`` to be adopted at the person's next sign-in; a seat lease (with a
launch token pointing at it) gets its session's person."""

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session, select

from gateway.audit.models import AuditEvent
from gateway.db import make_engine, session_scope
from gateway.migrate import upgrade
from gateway.seats.models import SeatLease
from gateway.voice.models import CallbackNumber
from gateway.vpn.models import AddressAssignment
from tests.gateway.sessions.conftest import GROUPS, PASSWORDS, Portal, sign_in
from tests.support.portal import serving_portal
from tests.support.postgres import create_database

NUMBER = "+8613812345678"


def _insert_number(db: Session, login: str, now: datetime) -> None:
    db.execute(
        text(
            "INSERT INTO voice_callback_number (login, e164, region, kind, status, code_attempts, confirmed_at, "
            "created_at, updated_at) VALUES (:login, :e164, 'CN', 'mobile', 'CONFIRMED', 0, :now, :now, :now)"
        ),
        {"login": login, "e164": NUMBER, "now": now},
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def legacy_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A database at revision 0010: hr1 has a session, a seat lease and a number; sup1's number and address are
    under ``SUP1``, a spelling no session has; then migrated to the newest revision."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'legacy.db'}"
    else:
        url = create_database(request.getfixturevalue("postgres_admin_url"), f"sohogw_legacy_{uuid.uuid4().hex[:8]}")
    upgrade(url, "0011")
    engine = make_engine(url)
    now = datetime.now(UTC)
    with session_scope(engine) as db:
        db.execute(
            text(
                "INSERT INTO home_session (id, token_sha256, csrf_token, state, person_id, login, user_dn, roles, "
                "groups, policy_groups, second_factor, source_ip, user_agent, node, created_at, last_seen_at, "
                "last_checked_at, idle_timeout_seconds, expires_at) VALUES ('hr1old', 'x', 'y', 'ENDED', "
                "'builtin:hr1', 'hr1', 'hr1', 'hr', '[]', '[]', false, '203.0.113.5', '', 'old', :now, :now, :now, "
                "3600, :now)"
            ),
            {"now": now - timedelta(days=1)},
        )
        db.execute(
            text(
                "INSERT INTO seat_lease (id, session_id, login, app_id, backend, node, seat_id, state, "
                "idle_timeout_seconds, max_session_seconds, started_at, last_activity_at) VALUES ('lease1', "
                "'hr1old', 'hr1', 'crm', 'x11', 'old', 'seat-1', 'ENDED', 60, 60, :now, :now)"
            ),
            {"now": now},
        )
        db.execute(
            text(
                "INSERT INTO launch_token (id, token_sha256, backend, mode, lease_id, session_id, login, seat_id, "
                "created_at, expires_at) VALUES ('t1', 'sha', 'x11', 'interactive', 'lease1', 'hr1old', 'hr1', "
                "'seat-1', :now, :now)"
            ),
            {"now": now},
        )
        _insert_number(db, "hr1", now)
        _insert_number(db, "SUP1", now)
        db.execute(
            text(
                "INSERT INTO vpn_address_assignment (login, ordinal, ipv4, ipv6, assigned_at, released_at) "
                "VALUES ('SUP1', 7, '10.77.0.7', 'fd77::7', :now, :now)"
            ),
            {"now": now - timedelta(days=2)},
        )
    upgrade(url)
    yield engine
    engine.dispose()


def test_numbers_and_addresses_take_the_person_of_their_name_or_are_adopted_at_the_next_sign_in(
    tmp_path: Path, legacy_engine: Engine
) -> None:
    with session_scope(legacy_engine) as db:
        numbers = {n.login: n.person_id for n in db.exec(select(CallbackNumber)).all()}
        address = db.exec(select(AddressAssignment)).one()
        lease = db.get(SeatLease, "lease1")
    assert numbers == {"hr1": "builtin:hr1", "SUP1": "legacy:SUP1"}
    assert address.person_id == "legacy:SUP1"
    assert lease is not None and lease.person_id == "builtin:hr1"
    url = legacy_engine.url.render_as_string(hide_password=False)
    with (
        serving_portal(
            tmp_path, url, legacy_engine, kind=Portal, passwords=PASSWORDS, groups=GROUPS, trusted_proxy=True
        ) as portal,
        portal.client() as supervisor,
    ):
        assert sign_in(supervisor, "sup1").status_code == 303
    with session_scope(legacy_engine) as db:
        numbers = {n.login: n.person_id for n in db.exec(select(CallbackNumber)).all()}
        address = db.exec(select(AddressAssignment)).one()
        adopted = db.exec(select(AuditEvent).where(AuditEvent.action == "session.adopt_legacy")).one()
    assert numbers == {"hr1": "builtin:hr1", "sup1": "builtin:sup1"}
    assert (address.person_id, address.login, address.ipv4) == ("builtin:sup1", "sup1", "10.77.0.7")
    detail = json.loads(adopted.detail)
    assert detail["person"] == "builtin:sup1" and detail["addresses"] == ["10.77.0.7"]
    assert len(detail["callback_numbers"]) == 1
