"""One person signing in from several tabs at once ends with one live session and no error, on SQLite and
PostgreSQL: the take-overs take turns (`db.serialize_on`) instead of deadlocking on the audit chain or each missing
the session another just opened."""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import select

from certs.revocation import HttpRevocationChecker
from gateway.adoption import LegacyAdoption
from gateway.db import session_scope
from gateway.directory import open_directory
from gateway.directory.settings import DirectorySettings
from gateway.policies.service import import_policy
from gateway.sessions.login import LoginRequest, LoginServices, login
from gateway.sessions.models import HomeSession, SessionState
from gateway.sessions.throttle import ThrottleLimits
from tests.support.portal import write_builtin_directory

TABS = 12
POLICY = """
version: 1
roles:
  supervisor: {require_client_certificate: false}
groups:
  SOHO-Supervisors: {roles: [supervisor]}
"""


def test_sign_ins_of_one_person_at_once_leave_one_live_session(tmp_path: Path, engine: Engine) -> None:
    directory_file = tmp_path / "directory.json"
    write_builtin_directory(directory_file, {"sup1": "sup-one-pw"}, {"sup1": ["SOHO-Supervisors"]})
    with session_scope(engine) as db:
        import_policy(db, POLICY, actor="test", source="", now=datetime.now(UTC))
    directory = open_directory(DirectorySettings(kind="builtin", builtin_file=directory_file))
    limits = ThrottleLimits(per_account=1000, per_source=1000, window=timedelta(minutes=15))
    services = LoginServices(directory, None, HttpRevocationChecker(), limits, "node-1", LegacyAdoption())
    attempt = LoginRequest("sup1", "sup-one-pw", "198.51.100.7")

    def sign_in(_: int) -> str:
        with session_scope(engine) as db:
            return login(db, services, attempt, datetime.now(UTC)).session.id

    for _ in range(3):
        with ThreadPoolExecutor(max_workers=TABS) as tabs:
            opened = list(tabs.map(sign_in, range(TABS)))  # an error (a deadlock) in any tab is raised here
        with session_scope(engine) as db:
            of_person = select(HomeSession.id).where(HomeSession.person_id == "builtin:sup1")
            live = list(db.exec(of_person.where(HomeSession.state == SessionState.ACTIVE)).all())
        assert len(set(opened)) == TABS and len(live) == 1 and live[0] in opened
