"""A right guess gives its throttle attempts back in the statement that appends its audit rows (PostgreSQL; SQLite
first, on its own), after the person's turn for the take-over and the audit chain's lock, the order a second
factor's take-over and `throttle.forget` take them in: else the two could each hold what the other waits for."""

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session, select

from certs.revocation import HttpRevocationChecker
from gateway.adoption import LegacyAdoption
from gateway.audit.service import record
from gateway.db import session_scope
from gateway.directory import Account, Directory, DirectoryUser, open_directory
from gateway.directory.settings import DirectorySettings
from gateway.policies.models import PolicyVersion
from gateway.policies.service import import_policy
from gateway.sessions import login as login_module
from gateway.sessions import service as session_service
from gateway.sessions import throttle
from gateway.sessions.errors import LoginFailed
from gateway.sessions.login import LoginRequest, LoginServices, login
from gateway.sessions.models import HomeSession, LoginThrottle, SessionState
from tests.support.portal import write_builtin_directory

PERSON = "builtin:sup1"
SOURCE = "198.51.100.7"
POLICY = """
version: 1
roles:
  supervisor: {require_client_certificate: false}
groups:
  SOHO-Supervisors: {roles: [supervisor]}
"""


class BindHeld:
    """The built-in directory, each bind held until the test lets it go (after the attempt was reserved)."""

    def __init__(self, directory: Directory) -> None:
        self._directory = directory
        self.reached, self.go = threading.Event(), threading.Event()

    def verify(self, account: Account, password: str) -> DirectoryUser:
        self.reached.set()
        assert self.go.wait(10)
        return self._directory.verify(account, password)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._directory, name)


@dataclass
class SignIns:
    engine: Engine
    services: LoginServices
    directory: BindHeld

    def attempt(self, password: str) -> str:
        """The outcome of a sign-in of sup1: "success" or the refusal's reason."""
        try:
            with session_scope(self.engine) as db:
                login(db, self.services, LoginRequest("sup1", password, SOURCE), datetime.now(UTC))
        except LoginFailed as refused:
            return refused.reason
        return "success"

    def attempt_as_the_portal(self, password: str) -> str:
        """`attempt`, a refusal committing what the request's transaction wrote, as the portal's page does."""
        with session_scope(self.engine) as db:
            try:
                login(db, self.services, LoginRequest("sup1", password, SOURCE), datetime.now(UTC))
            except LoginFailed as refused:
                return refused.reason
        return "success"

    def counts(self) -> dict[str, int]:
        with session_scope(self.engine) as db:
            return {row.key: row.attempts for row in db.exec(select(LoginThrottle))}


@pytest.fixture
def policy() -> str:
    return POLICY


@pytest.fixture
def sign_ins(tmp_path: Path, engine: Engine, policy: str) -> Iterator[SignIns]:
    """sup1 of the built-in directory, a supervisor signing in with a password alone (a session active at once,
    unless ``policy`` asks for a second factor)."""
    directory_file = tmp_path / "directory.json"
    write_builtin_directory(directory_file, {"sup1": "sup-one-pw"}, {"sup1": ["SOHO-Supervisors"]})
    with session_scope(engine) as db:
        import_policy(db, policy, actor="test", source="", now=datetime.now(UTC))
    directory = BindHeld(open_directory(DirectorySettings(kind="builtin", builtin_file=directory_file)))
    directory.go.set()
    limits = throttle.ThrottleLimits(per_account=1000, per_source=1000, window=timedelta(minutes=15))
    services = LoginServices(directory, None, HttpRevocationChecker(), limits, "node-1", LegacyAdoption())
    yield SignIns(engine, services, directory)


def test_a_complete_sign_in_gives_its_attempts_back_and_clears_the_persons_count(sign_ins: SignIns) -> None:
    assert [sign_ins.attempt("wrong") for _ in range(3)] == ["directory.wrong_password"] * 3
    assert sign_ins.counts() == {throttle.person_key(PERSON): 3, throttle.source_key(SOURCE): 3}
    assert sign_ins.attempt("sup-one-pw") == "success"
    assert sign_ins.counts() == {throttle.person_key(PERSON): 0, throttle.source_key(SOURCE): 3}
    assert sign_ins.attempt("sup-one-pw") == "success"  # and again, taking over the first session
    assert sign_ins.counts() == {throttle.person_key(PERSON): 0, throttle.source_key(SOURCE): 3}


@pytest.mark.parametrize("policy", [POLICY.replace("false}", "false, require_totp: true}")])
def test_a_sign_in_waiting_for_its_second_factor_gives_its_attempt_back_and_keeps_the_persons_count(
    sign_ins: SignIns, engine: Engine
) -> None:
    assert [sign_ins.attempt("wrong") for _ in range(2)] == ["directory.wrong_password"] * 2
    assert sign_ins.attempt("sup-one-pw") == "success"
    with session_scope(engine) as db:
        assert [s.state for s in db.exec(select(HomeSession))] == [SessionState.PENDING_SECOND_FACTOR]
    assert sign_ins.counts() == {throttle.person_key(PERSON): 2, throttle.source_key(SOURCE): 2}


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_a_reservation_does_not_wait_for_a_sign_in_that_has_not_taken_the_chains_lock(
    sign_ins: SignIns, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every sign-in of the person, and from the address, reserves on the rows a right guess gives its attempts back
    on. Given back in the session row's statement, they were held from there to the commit, through the take-over
    and the wait for the audit chain's lock, and the next reservation waited that long; given back in the audit
    append, after that lock, a reservation waits for none of it."""
    assert sign_ins.attempt("sup-one-pw") == "success"  # the first session, for the next to take over
    row_written, go_on = threading.Event(), threading.Event()
    record_all = session_service.record_all

    def after_a_pause(*args: Any, **kwargs: Any) -> None:
        row_written.set()
        assert go_on.wait(10)
        record_all(*args, **kwargs)

    monkeypatch.setattr(session_service, "record_all", after_a_pause)  # the take-over's append
    keys = [(throttle.person_key(PERSON), 1000), (throttle.source_key(SOURCE), 1000)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        signing_in = pool.submit(sign_ins.attempt, "sup-one-pw")
        try:
            assert row_written.wait(10)  # the session's row, its turn and the take-over written, the audit rows not
            with Session(engine) as other:
                reserving = pool.submit(throttle.reserve, other, keys, datetime.now(UTC), sign_ins.services.limits, "")
                reserving.result(timeout=5)
        finally:
            go_on.set()
        assert signing_in.result(timeout=10) == "success"
    # the reservation counted on both; the sign-in, complete, then cleared the person's count
    assert sign_ins.counts() == {throttle.person_key(PERSON): 0, throttle.source_key(SOURCE): 1}


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_a_sign_in_waiting_for_the_chains_lock_holds_no_throttle_row(sign_ins: SignIns, engine: Engine) -> None:
    """The give-back rides in the append's statement, whose part is written under the head's lock: a sign-in whose
    append waits for that lock (another transaction audited and has not committed) holds neither the person's nor
    the address's row, and a reservation on them goes through meanwhile (given back before the lock, it waited for
    the whole of the other transaction)."""
    assert sign_ins.attempt("sup-one-pw") == "success"  # the first session, for the next to take over
    keys = [(throttle.person_key(PERSON), 1000), (throttle.source_key(SOURCE), 1000)]
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
    )
    with ThreadPoolExecutor(max_workers=2) as pool, Session(engine) as holder, engine.connect() as watcher:
        record(holder, actor="test", action="test.hold", outcome="held")  # the chain's lock, to the commit
        try:
            signing_in = pool.submit(sign_ins.attempt, "sup-one-pw")
            for _ in range(400):
                if watcher.execute(waiting).scalar_one():
                    break
                watcher.rollback()
                time.sleep(0.025)
            else:
                raise AssertionError("the sign-in never waited for the chain's lock")
            with Session(engine) as other:
                reserving = pool.submit(throttle.reserve, other, keys, datetime.now(UTC), sign_ins.services.limits, "")
                reserving.result(timeout=5)
        finally:
            holder.commit()
        assert signing_in.result(timeout=10) == "success"
    assert sign_ins.counts() == {throttle.person_key(PERSON): 0, throttle.source_key(SOURCE): 1}


def test_a_right_guess_refused_by_a_policy_imported_during_its_bind_keeps_its_attempts(
    sign_ins: SignIns, engine: Engine
) -> None:
    """The session row's statement confirms the policy version this process read last (`open_session_under`): once
    another node's import has replaced it, nothing is written (nor audited, which gives the attempts back), and the
    sign-in judged on the new version is refused with its attempts counted (given back, the person's would be 0)."""
    assert [sign_ins.attempt("wrong") for _ in range(2)] == ["directory.wrong_password"] * 2
    sign_ins.directory.reached.clear()
    sign_ins.directory.go.clear()
    with ThreadPoolExecutor(max_workers=1) as pool:
        signing_in = pool.submit(sign_ins.attempt_as_the_portal, "sup-one-pw")
        assert sign_ins.directory.reached.wait(10)  # judged before the password on the version read then
        with session_scope(engine) as other_node:
            other_node.add(
                PolicyVersion(
                    version=2,
                    document=POLICY.replace("SOHO-Supervisors", "SOHO-Agents"),
                    created_by="node-2",
                    created_at=datetime.now(UTC),
                )
            )
        sign_ins.directory.go.set()
        assert signing_in.result(timeout=10) == "no_role"
    assert sign_ins.counts() == {throttle.person_key(PERSON): 3, throttle.source_key(SOURCE): 3}
    with session_scope(engine) as db:
        assert db.exec(select(HomeSession)).all() == []


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_a_sign_in_judged_again_holds_no_turn_another_sign_in_of_the_person_waits_for(
    sign_ins: SignIns, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """X evaluated version 1; version 2 is imported during X's bind, so X's session statement writes nothing and X
    is judged again. Y, the same person signing in meanwhile, takes the person's turn: it must not wait for a turn X
    took with nothing written (X, judged again, then waits for Y's turn; with the give-back written before the turn,
    for Y's throttle rows too, and PostgreSQL ended one of them as a deadlock)."""
    x_judged_again, y_done = threading.Event(), threading.Event()
    x_thread: list[int] = []
    admit = login_module._admit

    def admit_after_y(*args: Any) -> Any:
        if x_thread and threading.get_ident() == x_thread[0]:
            x_judged_again.set()  # X's conditional statement has written nothing
            y_done.wait(10)
        return admit(*args)

    monkeypatch.setattr(login_module, "_admit", admit_after_y)

    def x() -> str:
        x_thread.append(threading.get_ident())
        return sign_ins.attempt("sup-one-pw")

    sign_ins.directory.reached.clear()
    sign_ins.directory.go.clear()
    with ThreadPoolExecutor(max_workers=1) as x_pool, ThreadPoolExecutor(max_workers=1) as y_pool:
        signing_in_x = x_pool.submit(x)
        assert sign_ins.directory.reached.wait(10)  # X has reserved its attempt and read version 1: at its bind
        with session_scope(engine) as other_node:  # version 2 admits the same people
            document = POLICY + "\n# v2\n"
            other_node.add(
                PolicyVersion(version=2, document=document, created_by="node-2", created_at=datetime.now(UTC))
            )
        sign_ins.directory.go.set()
        assert x_judged_again.wait(10)
        signing_in_y = y_pool.submit(sign_ins.attempt, "sup-one-pw")
        try:
            assert signing_in_y.result(timeout=10) == "success"  # while X waits: Y waited for nothing of X's
        finally:
            y_done.set()
        assert signing_in_x.result(timeout=20) == "success"
    with Session(engine) as db:
        live = db.exec(select(HomeSession).where(HomeSession.state == SessionState.ACTIVE)).all()
        assert len(live) == 1  # X, the later, took Y's session over
