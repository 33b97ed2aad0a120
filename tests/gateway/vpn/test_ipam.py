"""IPAM on SQLite and PostgreSQL: stable per agent, held back after release, no collisions under concurrency."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from gateway.vpn import ipam
from gateway.vpn.errors import PoolExhausted
from gateway.vpn.models import AddressAssignment
from gateway.vpn.settings import VpnSettings

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def test_an_agent_gets_the_same_addresses_in_every_session(db: Session) -> None:
    settings = VpnSettings()
    first = ipam.assign(db, "test:li.na", "li.na", settings, NOW)
    other = ipam.assign(db, "test:wang.fang", "wang.fang", settings, NOW)
    ipam.release(db, "test:li.na", NOW)
    again = ipam.assign(db, "test:li.na", "li.na", settings, NOW + timedelta(days=30))
    assert (again.ipv4, again.ipv6) == (first.ipv4, first.ipv6)
    assert again.released_at is None
    assert first.ipv4 != other.ipv4 and first.ipv6 != other.ipv6
    assert ipam.addresses_of(first) == [f"{first.ipv4}/32", f"{first.ipv6}/128"]


def test_the_gateway_address_and_the_network_address_are_never_handed_out(db: Session) -> None:
    settings = VpnSettings()
    assigned = {ipam.assign(db, f"test:agent{n}", f"agent{n}", settings, NOW).ipv4 for n in range(3)}
    assert assigned == {"10.77.0.2", "10.77.0.3", "10.77.0.4"}


def test_a_released_address_is_held_back_for_its_owner_then_reused(db: Session) -> None:
    settings = VpnSettings.model_validate(
        {"pool4": "10.88.0.0/29", "pool6": "fd88::/125", "gateway_addresses": ["10.88.0.1/29", "fd88::1/125"]}
    )
    owners = [
        ipam.assign(db, f"test:agent{n}", f"agent{n}", settings, NOW) for n in range(5)
    ]  # .2 … .6: the pool is full
    with pytest.raises(PoolExhausted):
        ipam.assign(db, "test:newcomer", "newcomer", settings, NOW)
    ipam.release(db, "test:agent2", NOW)
    with pytest.raises(PoolExhausted):
        ipam.assign(db, "test:newcomer", "newcomer", settings, NOW + timedelta(hours=23))
    taken = ipam.assign(db, "test:newcomer", "newcomer", settings, NOW + timedelta(hours=24, seconds=1))
    assert (taken.ipv4, taken.ipv6) == (owners[2].ipv4, owners[2].ipv6)
    assert db.exec(select(AddressAssignment).where(AddressAssignment.person_id == "test:agent2")).first() is None


def test_concurrent_assignments_never_collide(engine: Engine) -> None:
    settings = VpnSettings()
    logins = [f"agent{n:03d}" for n in range(60)]
    results: dict[str, tuple[str, str]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def work(mine: list[str]) -> None:
        start.wait()
        for login in mine:

            def assign(db: Session, login: str = login) -> AddressAssignment:
                return ipam.assign(db, f"test:{login}", login, settings, NOW)

            try:
                row = ipam.retrying(engine, assign)
                results[login] = (row.ipv4, row.ipv6)
            except Exception as error:  # noqa: BLE001  (collected and asserted on below)
                errors.append(error)

    # every login is asked for by two threads at once, so the same-login race is exercised too
    threads = [threading.Thread(target=work, args=(logins[i % 3 :: 3],)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(results) == 60
    assert len({v4 for v4, _ in results.values()}) == 60 and len({v6 for _, v6 in results.values()}) == 60
    with Session(engine) as db:
        rows = db.exec(select(AddressAssignment)).all()
    assert {row.login: (row.ipv4, row.ipv6) for row in rows} == results
