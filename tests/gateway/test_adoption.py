"""Legacy-row adoption as the app runs it (`LegacyAdoption`): it adopts while anything is left to adopt, then stops
looking for good, since only migrations write ``legacy:`` keys. On SQLite and PostgreSQL."""

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from gateway import adoption
from gateway.adoption import LegacyAdoption, adopt_legacy_rows
from gateway.clock import as_utc
from gateway.db import session_scope
from gateway.directory import DirectoryUser
from gateway.sessions.models import EndReason, HomeSession, TotpSecret
from gateway.sessions.service import end_session
from gateway.vpn import ipam
from gateway.vpn.leases import lease_for_session, retire_ended_leases
from gateway.vpn.models import AddressAssignment, LeaseState, TunnelLease
from gateway.vpn.settings import VpnSettings
from tests.gateway.supervision.conftest import add_session
from tests.gateway.vpn.agents import agent_session
from tests.support.beside import run_beside
from tests.vpn.keys import key_pair

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
AGENT9 = DirectoryUser(dn="cn=agent9", login="agent9", person_id="builtin:agent9")


def _legacy_secret(db: Session, spelling: str) -> None:
    """A TOTP secret as migration 0008 left it: keyed by the name as typed."""
    db.add(TotpSecret(person_id=f"legacy:{spelling}", login=spelling, secret="JBSWY3DPEHPK3PXP", created_at=NOW))
    db.flush()


def test_adoption_runs_while_rows_are_left_then_stops_looking(db: Session) -> None:
    adoption = LegacyAdoption()
    session = add_session(db, "agent9", created_at=NOW)
    _legacy_secret(db, "AGENT9")
    adoption(db, session, AGENT9, NOW)
    assert db.get(TotpSecret, "builtin:agent9") is not None  # adopted: rows were left
    adoption(db, session, AGENT9, NOW)  # finds none left, and remembers it
    db.delete(db.get(TotpSecret, "builtin:agent9"))
    _legacy_secret(db, "Agent9")  # no migration writes one after start: this only shows the look is skipped
    adoption(db, session, AGENT9, NOW)
    assert db.get(TotpSecret, "legacy:Agent9") is not None and db.get(TotpSecret, "builtin:agent9") is None
    LegacyAdoption()(db, session, AGENT9, NOW)  # a new process looks again
    assert db.get(TotpSecret, "builtin:agent9") is not None


def test_a_legacy_address_under_a_desired_lease_is_not_released_until_the_lease_is_retired(db: Session) -> None:
    """A session from before migration 0008 (``legacy:AGENT9``) still has its tunnel on a legacy address when the
    person, who holds an address of their own, signs in: the legacy address is the pool's only once that lease is
    retired (the next sign-in's adoption releases it), else, after the hold-back, another agent could take it from
    under the tunnel."""
    legacy, _ = agent_session(db, "AGENT9", NOW - timedelta(hours=1), wireguard_key=key_pair()[1])
    legacy.person_id = "legacy:AGENT9"
    db.add(legacy)
    lease = lease_for_session(db, legacy, NOW - timedelta(hours=1), VpnSettings())
    assert lease is not None
    own = ipam.assign(db, AGENT9.person_id, AGENT9.login, VpnSettings(), NOW - timedelta(hours=1))
    session = add_session(db, "agent9", created_at=NOW)

    adopt_legacy_rows(db, session, AGENT9, NOW)
    address = db.exec(select(AddressAssignment).where(AddressAssignment.ipv4 == lease.ipv4)).one()
    assert (lease.person_id, address.ipv4 != own.ipv4) == (AGENT9.person_id, True)  # the lease is theirs now
    assert address.released_at is None, "released under a desired lease"

    end_session(db, legacy, EndReason.REPLACED, actor="agent9", now=NOW)
    assert retire_ended_leases(db, NOW) == 1
    adopt_legacy_rows(db, add_session(db, "agent9", created_at=NOW), AGENT9, NOW)
    assert address.person_id == "legacy:AGENT9" and address.released_at is not None
    assert as_utc(address.released_at) == NOW


def test_a_legacy_sessions_config_download_beside_the_adoption_keeps_its_address(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The person signs in while their session from before migration 0008 downloads its config, whose lease takes
    the legacy address back: the adoption locks the address rows before it reads the leases and releases, so the
    download waits for it and then takes the released address back (on PostgreSQL it once committed its lease in
    between, and the adoption released the address from under it)."""
    with session_scope(engine) as db:
        legacy, _ = agent_session(db, "AGENT9", NOW - timedelta(hours=1), wireguard_key=key_pair()[1])
        legacy.person_id = "legacy:AGENT9"
        db.add(legacy)
        ipam.assign(db, "legacy:AGENT9", "AGENT9", VpnSettings(), NOW - timedelta(hours=1))  # no lease on it yet
        ipam.assign(db, AGENT9.person_id, AGENT9.login, VpnSettings(), NOW - timedelta(hours=1))
        legacy_id = legacy.id

    def download() -> None:
        with session_scope(engine) as db:
            assert lease_for_session(db, db.get_one(HomeSession, legacy_id), NOW, VpnSettings()) is not None

    failures: list[BaseException] = []
    beside: list[threading.Thread] = []
    adopt_addresses = adoption._adopt_addresses

    def adopt_addresses_with_a_download_beside(*args: Any) -> None:
        beside.append(run_beside(engine, download, failures))
        adopt_addresses(*args)

    monkeypatch.setattr(adoption, "_adopt_addresses", adopt_addresses_with_a_download_beside)
    with session_scope(engine) as db:
        adopt_legacy_rows(db, add_session(db, "agent9", created_at=NOW), AGENT9, NOW)
    beside[0].join(30)
    assert failures == []
    with Session(engine) as db:
        lease = db.exec(select(TunnelLease)).one()
        address = db.exec(select(AddressAssignment).where(AddressAssignment.ipv4 == lease.ipv4)).one()
    assert lease.state is LeaseState.DESIRED
    assert address.released_at is None, "released under the download's lease"
