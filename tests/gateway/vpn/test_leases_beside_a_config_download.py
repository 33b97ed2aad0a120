"""A controller's pass leasing several sessions and an agent's config download leasing one of them at the same
moment: neither deadlocks on PostgreSQL (nor fails on SQLite) whoever comes first; the loser learns of the other's
lease as `AddressTaken`, which `ipam.retrying` (the download) or the worker runner (the pass) tries again.

Every audit row holds the chain's head until its transaction commits, and a download holds its person's address row
(`ipam.assign`) while it waits for that head. The pass once took the second person's row after its first lease's
audit row: the two waited for each other until PostgreSQL ended one (``deadlock detected``)."""

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from gateway.audit.service import verify_chain
from gateway.db import session_scope
from gateway.sessions.models import HomeSession
from gateway.vpn import ipam
from gateway.vpn.errors import AddressTaken
from gateway.vpn.leases import lease_for_session, lease_missing_sessions
from gateway.vpn.models import AddressAssignment, LeaseState, TunnelLease
from gateway.vpn.settings import VpnSettings
from tests.gateway.vpn.agents import agent_session
from tests.support.beside import run_beside
from tests.vpn.keys import key_pair

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
SETTINGS = VpnSettings()
LOGINS = ("ann", "bob")


def _lost_as_designed(error: BaseException) -> bool:
    """The other transaction's lease came first (`AddressTaken`), or, on SQLite, its write lock: never a deadlock."""
    if isinstance(error, OperationalError):
        return isinstance(error.orig, sqlite3.OperationalError) and ipam.lost_a_race(error)
    return isinstance(error, AddressTaken)


@pytest.mark.parametrize("returning", [LOGINS, LOGINS[:1]], ids=["returning agents", "and a newcomer"])
def test_a_pass_leasing_two_agents_and_the_second_ones_config_download_never_deadlock(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, returning: tuple[str, ...]
) -> None:
    """A returning agent has an address row, which the pass locks before it writes anything: the download waits for
    the pass and then finds its lease. A newcomer's row does not exist yet: the download may insert it first, and the
    pass, which has audited nothing yet, waits for the download's commit and then finds the row taken. (Two newcomers
    chose the same first free address and took turns on it, which hid the deadlock: one returning agent shows it.)"""
    with session_scope(engine) as db:
        for login in returning:
            ipam.assign(db, f"test:{login}", login, SETTINGS, NOW - timedelta(days=1))
            ipam.release(db, f"test:{login}", NOW - timedelta(days=1))
        ids = {login: agent_session(db, login, NOW, wireguard_key=key_pair()[1])[0].id for login in LOGINS}
    with Session(engine) as db:
        before = {row.person_id: row.ipv4 for row in db.exec(select(AddressAssignment)).all()}

    second: list[str] = []  # the login of the pass's second agent, whose download runs beside

    def download(db: Session) -> None:
        assert lease_for_session(db, db.get_one(HomeSession, ids[second[0]]), NOW, SETTINGS) is not None

    def one_download() -> None:
        with session_scope(engine) as db:
            download(db)

    failures: list[BaseException] = []
    assigned: list[str] = []
    beside: list[Any] = []
    assign = ipam.assign

    def assign_with_a_download_beside(db: Session, person_id: str, *args: Any) -> AddressAssignment:
        if not second:
            assigned.append(person_id)
        if len(assigned) == 2 and not second:  # the pass comes to its second agent (once, after the first's lease)
            second.append(person_id.removeprefix("test:"))
            beside.append(run_beside(engine, one_download, failures))
        return assign(db, person_id, *args)

    monkeypatch.setattr(ipam, "assign", assign_with_a_download_beside)
    try:
        with session_scope(engine) as db:
            lease_missing_sessions(db, NOW, SETTINGS)
    except (AddressTaken, OperationalError) as error:
        failures.append(error)
    beside[0].join(30)
    assert not beside[0].is_alive()
    assert len(failures) <= 1 and all(_lost_as_designed(error) for error in failures), failures
    if engine.dialect.name == "postgresql":  # who waits is fixed by the locks; SQLite's busy handler decides there
        assert [type(error) for error in failures] == [AddressTaken]

    monkeypatch.undo()
    ipam.retrying(engine, lambda db: lease_missing_sessions(db, NOW, SETTINGS))  # the loser again
    ipam.retrying(engine, download)
    with Session(engine) as db:
        leases = db.exec(select(TunnelLease).where(TunnelLease.state == LeaseState.DESIRED)).all()
        addresses = {row.person_id: row for row in db.exec(select(AddressAssignment)).all()}
        assert verify_chain(db).first_bad_seq is None
    assert sorted(lease.session_id for lease in leases) == sorted(ids.values())
    assert {lease.person_id: lease.ipv4 for lease in leases} == {p: row.ipv4 for p, row in addresses.items()}
    assert len({lease.ipv4 for lease in leases}) == 2
    assert all(row.released_at is None for row in addresses.values())
    assert {p: addresses[p].ipv4 for p in before} == before  # a returning agent's address is theirs again


def test_a_download_committed_before_the_pass_locks_the_rows_leaves_the_pass_its_other_leases(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pass reads which sessions lack a lease, then locks their persons' rows; a download that committed one of
    those leases in between is seen after the lock, so the pass writes the others instead of failing on the one."""
    with session_scope(engine) as db:
        ids = [agent_session(db, f"agent{n:02}", NOW, wireguard_key=key_pair()[1])[0].id for n in range(20)]
        for session_id in ids:  # every one has had an address before: their rows exist to be locked
            session = db.get(HomeSession, session_id)
            assert session is not None
            ipam.assign(db, session.person_id, session.login, SETTINGS, NOW)
    lock_rows = ipam.lock_addresses

    def download_then_lock(db: Session, persons: Any) -> None:
        def download(other: Session) -> TunnelLease | None:
            return lease_for_session(other, other.get(HomeSession, ids[-1]), NOW, SETTINGS)  # type: ignore[arg-type]

        ipam.retrying(engine, download)  # the last agent's download on another node commits right now
        lock_rows(db, persons)

    monkeypatch.setattr(ipam, "lock_addresses", download_then_lock)
    with session_scope(engine) as db:
        assert lease_missing_sessions(db, NOW, SETTINGS) == len(ids) - 1
    with Session(engine) as db:
        leases = db.exec(select(TunnelLease).where(TunnelLease.state == LeaseState.DESIRED)).all()
        assert sorted(lease.session_id for lease in leases) == sorted(ids)
        assert verify_chain(db).intact
