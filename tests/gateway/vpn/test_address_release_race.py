"""A person's address is never released while a lease of theirs is desired, whichever of their new session's lease
and the retirement of their last one goes first, on SQLite and PostgreSQL (READ COMMITTED): otherwise, after the
hold-back, `ipam` hands the address to someone else while the person's tunnel still carries it.

Each test runs one side in this thread and stops it at the race's window (a step of the real code wrapped), runs the
other side on its own connection until it commits or waits for a lock, then lets the first side go on."""

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from gateway.db import session_scope
from gateway.sessions.models import EndReason, HomeSession
from gateway.sessions.service import end_session
from gateway.vpn import ipam
from gateway.vpn.leases import lease_for_session, retire_ended_leases
from gateway.vpn.models import AddressAssignment, LeaseState, TunnelLease
from gateway.vpn.settings import VpnSettings
from tests.gateway.vpn.agents import agent_session
from tests.support.beside import run_beside
from tests.vpn.keys import key_pair

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
SETTINGS = VpnSettings()
PERSON = "test:li.na"


def _ended_lease_and_a_new_session(engine: Engine) -> str:
    """The person's lease of a session that has just ended (not yet retired), and their new keyed session, committed;
    returns the new session's id."""
    with session_scope(engine) as db:
        old, _ = agent_session(db, "li.na", NOW, wireguard_key=key_pair()[1])
        assert lease_for_session(db, old, NOW, SETTINGS) is not None
        end_session(db, old, EndReason.LOGOUT, actor="li.na", now=NOW)
        new, _ = agent_session(db, "li.na", NOW, wireguard_key=key_pair()[1])
        return new.id


def _sign_in_lease(engine: Engine, session_id: str) -> None:
    with session_scope(engine) as db:
        assert lease_for_session(db, db.get_one(HomeSession, session_id), NOW, SETTINGS) is not None


def _retirement(engine: Engine) -> None:
    with session_scope(engine) as db:
        assert retire_ended_leases(db, NOW + timedelta(seconds=1)) == 1


def _assert_the_address_is_held_by_the_live_lease(engine: Engine) -> None:
    with Session(engine) as db:
        address = db.exec(select(AddressAssignment).where(AddressAssignment.person_id == PERSON)).one()
        live = db.exec(
            select(TunnelLease).where(TunnelLease.person_id == PERSON, TunnelLease.state == LeaseState.DESIRED)
        ).all()
    assert [(lease.ipv4, lease.ipv6) for lease in live] == [(address.ipv4, address.ipv6)]
    assert address.released_at is None, "released while the person's new lease is desired"


def test_the_retirement_of_the_last_lease_waits_for_a_new_lease_that_read_the_address_first(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    session_id = _ended_lease_and_a_new_session(engine)
    failures: list[BaseException] = []
    threads: list[threading.Thread] = []
    assign = ipam.assign

    def assign_then_retire_beside(*args: Any) -> AddressAssignment:
        row = assign(*args)  # the new lease's transaction has its address, not yet its lease
        threads.append(run_beside(engine, lambda: _retirement(engine), failures))
        return row

    monkeypatch.setattr(ipam, "assign", assign_then_retire_beside)
    _sign_in_lease(engine, session_id)
    threads[0].join(30)
    assert not failures, failures
    _assert_the_address_is_held_by_the_live_lease(engine)


def test_a_new_lease_beside_the_retirement_of_the_last_one_takes_the_released_address_back(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    session_id = _ended_lease_and_a_new_session(engine)
    failures: list[BaseException] = []
    threads: list[threading.Thread] = []
    release = ipam.release

    def release_then_lease_beside(*args: Any) -> None:
        release(*args)  # the retirement found no desired lease and released the address, not yet committed
        threads.append(run_beside(engine, lambda: _sign_in_lease(engine, session_id), failures))

    monkeypatch.setattr(ipam, "release", release_then_lease_beside)
    _retirement(engine)
    threads[0].join(30)
    assert not failures, failures
    _assert_the_address_is_held_by_the_live_lease(engine)


def test_two_newcomers_at_once_never_take_over_the_same_released_address(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full pool with one address past its hold-back: the first newcomer takes it, the second finds none left."""
    settings = VpnSettings.model_validate(
        {"pool4": "10.88.0.0/29", "pool6": "fd88::/125", "gateway_addresses": ["10.88.0.1/29", "fd88::1/125"]}
    )
    with session_scope(engine) as db:
        for n in range(5):  # .2 … .6: the pool is full
            ipam.assign(db, f"test:agent{n}", f"agent{n}", settings, NOW)
        ipam.release(db, "test:agent2", NOW)
    later = NOW + timedelta(hours=settings.hold_back_hours, seconds=1)
    failures: list[BaseException] = []
    threads: list[threading.Thread] = []
    taken: dict[str, str] = {}
    take_over = ipam._take_over

    def newcomer(person: str) -> None:
        with session_scope(engine) as db:
            taken[person] = ipam.assign(db, person, person, settings, later).ipv4

    def take_over_then_another_beside(*args: Any) -> AddressAssignment:
        row = take_over(*args)  # the first newcomer has chosen the released address, not yet committed
        if not threads:
            threads.append(run_beside(engine, lambda: newcomer("test:second"), failures))
        return row

    monkeypatch.setattr(ipam, "_take_over", take_over_then_another_beside)
    newcomer("test:first")
    threads[0].join(30)
    assert taken == {"test:first": "10.88.0.4"}
    assert [type(error).__name__ for error in failures] == ["PoolExhausted"]
