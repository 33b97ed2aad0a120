"""A sign-in's session object is made without the model's constructor (`new_home_session`), and must be the object
the constructor would make: the same fields and defaults, written and read back as the same row."""

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from gateway.db import session_scope
from gateway.sessions.models import HomeSession, SessionState
from gateway.sessions.service import new_home_session, open_session

NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
FIELDS: dict[str, Any] = {
    "id": "",
    "token_sha256": "",
    "csrf_token": "",
    "state": SessionState.ACTIVE,
    "person_id": "person-1",
    "login": "agent1",
    "user_dn": "CN=agent1,DC=corp,DC=example",
    "roles": "agent",
    "created_at": NOW,
    "last_seen_at": NOW,
    "last_checked_at": NOW,
    "idle_timeout_seconds": 900,
    "expires_at": NOW + timedelta(hours=8),
}


def test_a_new_session_has_the_fields_and_defaults_the_constructor_gives() -> None:
    made, constructed = new_home_session(**FIELDS), HomeSession(**FIELDS)
    assert made.model_dump() == constructed.model_dump()
    assert made.second_factor is False and made.groups == "[]" and made.ended_at is None  # defaults filled in


def test_a_field_the_model_does_not_have_or_a_missing_required_one_is_refused() -> None:
    """Refused at once, where the model's constructor ignores an unknown name and leaves a required field unset."""
    with pytest.raises(TypeError, match="unknown: \\['colour'\\]"):
        new_home_session(**FIELDS, colour="blue")
    with pytest.raises(TypeError, match="missing: \\['person_id'\\]"):
        new_home_session(**{name: value for name, value in FIELDS.items() if name != "person_id"})


def test_a_new_session_is_written_and_its_later_changes_flushed(engine: Engine) -> None:
    with session_scope(engine) as db:
        session = new_home_session(**FIELDS)
        open_session(db, session)
        session.display_name = "Agent One"  # a change after the row was written: flushed as an update
    with session_scope(engine) as db:
        stored = db.get(HomeSession, session.id)
        assert stored is not None
        assert stored.model_dump(exclude={"created_at", "last_seen_at", "last_checked_at", "expires_at"}) == (
            session.model_dump(exclude={"created_at", "last_seen_at", "last_checked_at", "expires_at"})
        )
        assert stored.display_name == "Agent One" and stored.second_factor is False


def test_a_process_s_first_session_object_works_before_any_query_or_constructor() -> None:
    """A gateway's first sign-in may make its session object before anything has configured the ORM's mappers (the
    constructor does; `new_home_session` skips it): reading a field then failed ('NoneType' object has no attribute
    'supports_population') and the sign-in answered 500. A fresh interpreter, as the test run's is not."""
    fresh = (
        "from tests.gateway.sessions.test_new_home_session import FIELDS\n"
        "from gateway.sessions.service import new_home_session\n"
        "assert new_home_session(**FIELDS).state.value == 'active'\n"
    )
    subprocess.run([sys.executable, "-c", fresh], check=True, cwd=Path(__file__).parents[3], timeout=60)
