"""Which live sessions a changed directory entry touches, and which containers the subscription watches.

Sessions are stored rows (these tests are about matching, not signing in); the directories' own spellings are
used: AD's upper-case RDN types with an escaped comma, OpenLDAP's lower-case ones, SIDs beside DNs in the policy
groups.
"""

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from gateway.db import session_scope
from gateway.sessions.directory_changes import touched_sessions, watched_containers
from gateway.sessions.models import EndReason, HomeSession, SessionState
from gateway.sessions.service import end_session, open_session

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
USERS = "CN=Users,DC=soho,DC=test"
NIGHT = r"OU=Night\, Shift,DC=soho,DC=test"
AGENTS = f"CN=SOHO-Agents,{USERS}"
TEAM = "CN=Team-A,OU=Teams,DC=soho,DC=test"
SID = "S-1-5-21-1-2-3-1105"


def _store(engine: Engine, person: str, user_dn: str, groups: list[str]) -> str:
    with session_scope(engine) as db:
        session = HomeSession(
            id="",
            token_sha256="",
            csrf_token="",
            state=SessionState.ACTIVE,
            person_id=person,
            login=person,
            user_dn=user_dn,
            roles="agent",
            policy_groups=json.dumps(groups),
            created_at=NOW,
            last_seen_at=NOW,
            last_checked_at=NOW,
            idle_timeout_seconds=900,
            expires_at=NOW + timedelta(hours=8),
        )
        open_session(db, session)
        return session.id


def _touched(engine: Engine, changed: frozenset[str] | None) -> set[str]:
    with session_scope(engine) as db:
        return set(touched_sessions(db, changed))


def test_a_change_touches_the_sessions_of_its_account_or_groups_only(engine: Engine) -> None:
    wei = _store(engine, "guid-wei", f"CN=Zhang Wei,{USERS}", [AGENTS, SID])
    smith = _store(engine, "guid-smith", rf"CN=Smith\, John,{NIGHT}", [TEAM, AGENTS])
    assert _touched(engine, frozenset({"cn=zhang wei,cn=users,dc=soho,dc=test"})) == {wei}  # AD folds case
    assert _touched(engine, frozenset({r"CN=Smith\2C John,OU=Night\, Shift,DC=soho,DC=test"})) == {smith}
    assert _touched(engine, frozenset({TEAM})) == {smith}
    assert _touched(engine, frozenset({AGENTS})) == {wei, smith}
    assert _touched(engine, frozenset({"guid-smith", "CN=guid-wei\\0ADEL,CN=Deleted Objects"})) == {smith}
    assert _touched(engine, frozenset({f"CN=Someone Else,{USERS}", SID})) == set()  # a SID is not a DN of ours
    assert _touched(engine, None) == {wei, smith}


def test_ended_sessions_are_neither_touched_nor_watched(engine: Engine) -> None:
    live = _store(engine, "guid-live", f"CN=Live,{USERS}", [AGENTS])
    gone = _store(engine, "guid-gone", f"CN=Gone,{NIGHT}", [TEAM])
    with session_scope(engine) as db:
        session = db.get(HomeSession, gone)
        assert session is not None
        end_session(db, session, EndReason.LOGOUT, actor="test", now=NOW)
    assert _touched(engine, frozenset({f"CN=Gone,{NIGHT}", f"CN=Live,{USERS}"})) == {live}
    assert watched_containers(engine) == frozenset({USERS})


def test_the_containers_of_accounts_and_groups_are_watched(engine: Engine) -> None:
    assert watched_containers(engine) == frozenset()
    _store(engine, "guid-wei", f"CN=Zhang Wei,{USERS}", [AGENTS, SID])
    _store(engine, "guid-smith", rf"CN=Smith\, John,{NIGHT}", [TEAM])
    assert watched_containers(engine) == frozenset({USERS, NIGHT, "OU=Teams,DC=soho,DC=test"})
