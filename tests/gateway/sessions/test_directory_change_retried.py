"""A directory change whose re-validation could not reach the directory is judged again, not dropped.

The subscription's worker re-validates the sessions a change touched. When the directory does not answer at that
moment (a pooled connection the network cut, a domain controller restarting), the change must be judged again with
back-off: the poll, its only other judge, may be an hour away, and a deleted or disabled account would keep its
session until then. The directory is the real built-in one, whose answers fail while ``failing`` lasts; the account
is deleted from its file, and the change is published as the subscription publishes it.
"""

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from certs.revocation import HttpRevocationChecker
from gateway.adoption import LegacyAdoption
from gateway.clock import utcnow
from gateway.db import session_scope
from gateway.directory import Directory, DirectoryUser, open_directory
from gateway.directory.builtin import person_id
from gateway.directory.errors import DirectoryUnavailable
from gateway.directory.settings import DirectorySettings
from gateway.events import publish
from gateway.sessions.login import LoginServices
from gateway.sessions.models import EndReason, HomeSession, SessionState
from gateway.sessions.service import open_session
from gateway.sessions.throttle import ThrottleLimits
from gateway.sessions.workers import DIRECTORY_CHANGED, DirectoryChanges
from gateway.settings import Settings
from tests.support.portal import write_builtin_directory
from tests.support.workers import running, wait_for


class UnansweringAtFirst:
    """The real directory, whose lookups fail as an unreachable server's do while ``failing`` is above zero."""

    def __init__(self, inner: Directory, failing: int) -> None:
        self._inner, self.failing = inner, failing

    def lookup(self, login_or_dn: str) -> DirectoryUser:
        if self.failing > 0:
            self.failing -= 1
            raise DirectoryUnavailable("no directory server answered")
        return self._inner.lookup(login_or_dn)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[UnansweringAtFirst]:
    path = tmp_path / "directory.json"
    write_builtin_directory(path, {"agent1": "pw-1", "agent2": "pw-2"}, {"agent1": ["SOHO-Agents"], "agent2": []})
    real = open_directory(DirectorySettings(kind="builtin", builtin_file=path))
    yield UnansweringAtFirst(real, failing=2)
    real.close()
    users = json.loads(path.read_text())["users"]
    assert "agent1" not in users  # the test deleted the account, as an administrator would


def _session_of(engine: Engine, login: str) -> str:
    """A live agent session as a sign-in leaves it: its groups grant its role (the policy is applied by them while
    the directory does not answer)."""
    now = datetime.now(UTC)
    with session_scope(engine) as db:
        session = HomeSession(
            id="", token_sha256="", csrf_token="", state=SessionState.ACTIVE, person_id=person_id(login), login=login,
            user_dn=login, roles="agent", policy_groups='["SOHO-Agents"]', created_at=now, last_seen_at=now,
            last_checked_at=now,
            idle_timeout_seconds=900, expires_at=now + timedelta(hours=8),
        )  # fmt: skip
        open_session(db, session)
        return session.id


def _state(engine: Engine, session_id: str) -> tuple[SessionState, EndReason | None]:
    with session_scope(engine) as db:
        session = db.get(HomeSession, session_id)
        assert session is not None
        return session.state, session.end_reason


def test_a_change_judged_while_the_directory_is_down_is_judged_again(
    engine: Engine, directory: UnansweringAtFirst, tmp_path: Path
) -> None:
    session_id = _session_of(engine, "agent1")
    path = tmp_path / "directory.json"
    document = json.loads(path.read_text())
    del document["users"]["agent1"]
    path.write_text(json.dumps(document))
    services = LoginServices(directory, None, HttpRevocationChecker(), ThrottleLimits(), "node-1", LegacyAdoption())
    worker = DirectoryChanges(engine, services, Settings(data_dir=tmp_path), utcnow, threading.Lock())
    with running([worker], engine):
        publish(DIRECTORY_CHANGED, frozenset({person_id("agent1")}))
        assert wait_for(lambda: _state(engine, session_id)[0] is not SessionState.ACTIVE, 15)
    assert directory.failing == 0  # the first judgements met an unanswering directory
    assert _state(engine, session_id)[1] is EndReason.ACCOUNT_GONE
