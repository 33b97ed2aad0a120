"""Address management: every agent gets one stable /32 and /128, the same in every session (and after a rename:
the addresses are the person's, by the directory's stable id).

Host number N gives ``pool4 + N`` and ``pool6 + N``, so the two addresses of an agent always pair up. A new
agent takes the next number after the highest in use, or, when the pool is full, the number of an agent whose
address was released longer ago than the hold-back period. Two gateways (or threads) choosing at once may pick
the same number: the unique constraints refuse the second, which surfaces as `AddressTaken` and the caller
retries the whole transaction (`retrying`), reading the winner's row the next time. A row already there is locked
by whoever changes who holds it (`assign`, `_take_over`, `lock_addresses` before a release), so no two live leases of
different people ever name one address (docs/vpn.md, "What IPAM guarantees").
"""

import ipaddress
import logging
import sqlite3
import time
from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import Engine, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col, func, select

from gateway.db import session_scope
from gateway.vpn.errors import AddressTaken, PoolExhausted
from gateway.vpn.models import AddressAssignment
from gateway.vpn.settings import VpnSettings

log = logging.getLogger(__name__)
T = TypeVar("T")


def _host(settings: VpnSettings, ordinal: int) -> tuple[str, str]:
    return str(settings.pool4.network_address + ordinal), str(settings.pool6.network_address + ordinal)


def _usable(settings: VpnSettings, ordinal: int) -> bool:
    """Not the network or broadcast address, and not one of the gateway's own addresses."""
    if not 0 < ordinal < settings.pool4.num_addresses - 1 or ordinal >= settings.pool6.num_addresses:
        return False
    own = {str(address.ip) for address in settings.gateway_addresses}
    return not own & set(_host(settings, ordinal))


def assign(db: Session, person_id: str, login: str, settings: VpnSettings, now: datetime) -> AddressAssignment:
    """The person's addresses: their own again if they ever had some, else a free pair. Flushes, never commits.

    ``login`` is the person's account name now, kept on the row for display.

    The person's row is read by writing it (taken back, renamed), not by a plain read: the write waits for a
    transaction that holds the row (`retire_ended_leases` releasing it, `_take_over` handing it to someone else) and
    then reads it as committed, and that transaction's own lock (`lock_addresses`) waits for this one to commit. So a
    release is never lost under the caller's new lease, nor is an address taken back that another person now holds.
    PostgreSQL (READ COMMITTED) takes the row's lock; SQLite takes its one write lock, where a plain read before the
    transaction's first write takes none and reads the row as it was before that lock's holder commits
    (tests/gateway/vpn/test_address_release_race.py shows both orders on both databases)."""
    taken_back = (
        update(AddressAssignment)
        .where(col(AddressAssignment.person_id) == person_id)
        .values(released_at=None, login=login)
        .returning(AddressAssignment)
    )
    mine: AddressAssignment | None = db.execute(taken_back).scalars().first()
    if mine is not None:
        return mine
    highest = db.exec(select(func.max(AddressAssignment.ordinal))).one() or 0
    ordinal = highest + 1
    while ordinal < settings.pool4.num_addresses and not _usable(settings, ordinal):
        ordinal += 1
    if _usable(settings, ordinal):
        ipv4, ipv6 = _host(settings, ordinal)
        row = AddressAssignment(
            person_id=person_id, login=login, ordinal=ordinal, ipv4=ipv4, ipv6=ipv6, assigned_at=now
        )
        db.add(row)
    else:
        row = _take_over(db, person_id, login, settings, now)
    try:
        db.flush()
    except IntegrityError as error:
        raise AddressTaken(f"address {row.ipv4} was assigned concurrently; try again") from error
    return row


def _take_over(db: Session, person_id: str, login: str, settings: VpnSettings, now: datetime) -> AddressAssignment:
    """Hand the longest-released address whose hold-back is over to a new agent.

    The row is locked as it is chosen, skipping those another transaction holds: on PostgreSQL two newcomers at once
    otherwise chose the same row, the second's update waited for the first's commit and then took the address from
    under the first's new lease. (On SQLite `assign`'s first write already made them take turns.)"""
    cutoff = now - timedelta(hours=settings.hold_back_hours)
    row = db.exec(
        select(AddressAssignment)
        .where(col(AddressAssignment.released_at).is_not(None))
        .where(col(AddressAssignment.released_at) <= cutoff)
        .order_by(col(AddressAssignment.released_at))
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()
    if row is None:
        raise PoolExhausted(f"no free VPN address is left in {settings.pool4} / {settings.pool6}")
    log.info("address %s passes from %s to %s", row.ipv4, row.login, login)
    row.person_id, row.login, row.assigned_at, row.released_at = person_id, login, now, None
    db.add(row)
    return row


def lock_addresses(db: Session, person_ids: Collection[str]) -> None:
    """Wait for any open transaction that holds these persons' address rows (`assign`) to commit, and hold them until
    this one does: the statements after it see that transaction's leases, and `assign` then sees a release made here.

    In a fixed order, so two transactions locking some of the same persons wait for each other rather than in a
    circle. Before the caller's first audit row (which holds the chain's head to the commit): `assign`'s caller
    writes its audit row while holding the person's row. SQLite ignores ``FOR UPDATE``; a caller that has written
    before its next read (as `retire_ended_leases` has) holds the one write lock there, which does the same."""
    if not person_ids:
        return
    rows = select(AddressAssignment.id).where(col(AddressAssignment.person_id).in_(sorted(person_ids)))
    db.exec(rows.order_by(col(AddressAssignment.person_id)).with_for_update()).all()


def release(db: Session, person_id: str, now: datetime) -> None:
    """The person holds no tunnel any more; their address is kept for them through the hold-back period."""
    row = db.exec(select(AddressAssignment).where(AddressAssignment.person_id == person_id)).first()
    if row is not None and row.released_at is None:
        row.released_at = now
        db.add(row)


def addresses_of(row: AddressAssignment) -> list[str]:
    """The agent's interface addresses as CIDRs: the /32 and the /128."""
    return [f"{ipaddress.ip_address(row.ipv4)}/32", f"{ipaddress.ip_address(row.ipv6)}/128"]


LOST_A_RACE = {"40P01", "40001", "55P03"}
"""PostgreSQL's SQLSTATEs for a transaction ended for another's sake: deadlock_detected, serialization_failure,
lock_not_available. The code, not the message: the message is in the server's ``lc_messages`` language."""
SQLITE_BUSY = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
"""SQLite's primary result codes for a lock another connection held past the busy timeout ("database is locked")."""


def lost_a_race(error: OperationalError) -> bool:
    """Whether ``error`` ended the transaction only because another one held what it needed: trying again may work."""
    cause = error.orig
    if isinstance(cause, sqlite3.OperationalError):
        return cause.sqlite_errorcode & 0xFF in SQLITE_BUSY  # the low byte: extended codes carry the primary one
    return getattr(cause, "sqlstate", None) in LOST_A_RACE


def retrying(engine: Engine, work: Callable[[Session], T], attempts: int = 20) -> T:
    """Run `work` in its own transaction, again when it lost a race for an address or for a lock (`lost_a_race`)."""
    for attempt in range(attempts):
        try:
            with session_scope(engine) as db:
                return work(db)
        except (AddressTaken, OperationalError) as error:
            if isinstance(error, OperationalError) and not lost_a_race(error):
                raise
            time.sleep(0.005 * (attempt + 1))
    raise AddressTaken(f"gave up after {attempts} attempts: the address pool is too contended")
