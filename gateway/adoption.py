"""Adopting rows written before sessions were keyed by person (migration 0008) at the person's next sign-in.

Such rows carry ``legacy:<name as typed>``. A row is the person's when that name, folded as AD folds names
(``throttle.account_key``: domain prefix and UPN suffix dropped, case ignored), is one of the person's own names
(account name, sAMAccountName, UPN). Of several legacy TOTP secrets (one per spelling, the very flaw 0008 closes)
the one confirmed first is kept and the others are deleted: a later one may be an attacker's. Legacy live sessions
take the person's id, so the one-live-session rule and suspensions reach them. Each adoption is audited.

Migration 0012 left ``legacy:<name>`` on callback numbers, VPN addresses, call legs and tunnel leases whose login
had no session to take the person from, and on seat leases of pre-0008 sessions; the live ones are adopted. A
legacy number becomes the person's unless they already hold it; a legacy address becomes theirs when they hold
none, else it is released to the pool (after the hold-back) once no desired tunnel lease names it.
"""

from datetime import datetime
from typing import TypeVar

from sqlmodel import Session, col, select

from gateway.audit.service import record
from gateway.directory import DirectoryUser
from gateway.seats.models import SeatLease, SeatLeaseState
from gateway.sessions.models import HomeSession, SessionState, TotpSecret
from gateway.sessions.throttle import account_key
from gateway.voice.models import LIVE_LEG_STATES, CallbackNumber, CallLeg
from gateway.vpn import ipam
from gateway.vpn.models import AddressAssignment, LeaseState, TunnelLease

LEGACY_PREFIX = "legacy:"


def _names(user: DirectoryUser) -> set[str]:
    return {account_key(name) for name in (user.login, user.sam_account_name, user.upn) if name}


def _theirs(legacy_id: str, names: set[str]) -> bool:
    return account_key(legacy_id.removeprefix(LEGACY_PREFIX)) in names


class LegacyAdoption:
    """`adopt_legacy_rows` for one process, skipped for good once no row is left that anyone could adopt.

    Only migrations 0008 and 0012 write ``legacy:`` keys, before the gateway starts; the gateway never writes one,
    and adopting only removes them. So once a sign-in finds none left to adopt, the search (eight queries, about a
    tenth of a sign-in) is never run again. The finding is made before this sign-in adopts anything: what it adopts
    is only counted gone once committed, at a later sign-in's look.
    """

    def __init__(self) -> None:
        self._none_left = False

    def __call__(self, db: Session, session: HomeSession, user: DirectoryUser, now: datetime) -> None:
        if self._none_left:
            return
        if not _anything_to_adopt(db):
            self._none_left = True
            return
        adopt_legacy_rows(db, session, user, now)


def _anything_to_adopt(db: Session) -> bool:
    """Whether any row with a ``legacy:`` key is still one `adopt_legacy_rows` would take, for anyone."""
    checks = (
        select(TotpSecret.person_id).where(col(TotpSecret.person_id).startswith(LEGACY_PREFIX)),
        select(HomeSession.id).where(
            col(HomeSession.person_id).startswith(LEGACY_PREFIX), HomeSession.state != SessionState.ENDED
        ),
        select(CallbackNumber.id).where(col(CallbackNumber.person_id).startswith(LEGACY_PREFIX)),
        select(AddressAssignment.id).where(col(AddressAssignment.person_id).startswith(LEGACY_PREFIX)),
        select(CallLeg.id).where(
            col(CallLeg.person_id).startswith(LEGACY_PREFIX),
            col(CallLeg.wanted),
            col(CallLeg.state).in_(LIVE_LEG_STATES),
        ),
        select(TunnelLease.id).where(
            col(TunnelLease.person_id).startswith(LEGACY_PREFIX), TunnelLease.state == LeaseState.DESIRED
        ),
        select(SeatLease.id).where(
            col(SeatLease.person_id).startswith(LEGACY_PREFIX), SeatLease.state != SeatLeaseState.ENDED
        ),
    )
    return any(db.exec(check.limit(1)).first() is not None for check in checks)


def adopt_legacy_rows(db: Session, session: HomeSession, user: DirectoryUser, now: datetime) -> None:
    """Give the person their pre-0008 TOTP secret and live sessions, and the callback numbers, addresses, live legs
    and tunnel and seat leases 0012 could not give a person; a no-op once nothing legacy is left."""
    names = _names(user)
    legacy_secrets = [
        s
        for s in db.exec(select(TotpSecret).where(col(TotpSecret.person_id).startswith(LEGACY_PREFIX))).all()
        if _theirs(s.person_id, names)
    ]
    legacy_sessions = [
        s
        for s in db.exec(
            select(HomeSession).where(
                col(HomeSession.person_id).startswith(LEGACY_PREFIX), HomeSession.state != SessionState.ENDED
            )
        ).all()
        if _theirs(s.person_id, names)
    ]
    numbers = _theirs_of(db, CallbackNumber, names)
    held, theirs = _locked_addresses(db, user, {a.person_id for a in _theirs_of(db, AddressAssignment, names)})
    # Once the person holds an address, their released legacy ones are the pool's: nothing left to adopt.
    addresses = [a for a in theirs if held is None or a.released_at is None]
    legs = [leg for leg in _theirs_of(db, CallLeg, names) if leg.wanted and leg.state in LIVE_LEG_STATES]
    leases = [lease for lease in _theirs_of(db, TunnelLease, names) if lease.state is LeaseState.DESIRED]
    seats = [seat for seat in _theirs_of(db, SeatLease, names) if seat.state is not SeatLeaseState.ENDED]
    if not (legacy_secrets or legacy_sessions or numbers or addresses or legs or leases or seats):
        return
    kept = None
    if db.get(TotpSecret, user.person_id) is None and legacy_secrets:
        oldest = min(legacy_secrets, key=lambda s: (s.confirmed_at is None, s.confirmed_at or s.created_at))
        kept = TotpSecret(
            person_id=user.person_id,
            login=user.login,
            secret=oldest.secret,
            created_at=oldest.created_at,
            confirmed_at=oldest.confirmed_at,
            last_used_step=oldest.last_used_step,
        )
    for secret in legacy_secrets:
        db.delete(secret)
    db.flush()
    if kept is not None:
        db.add(kept)
    for legacy in legacy_sessions:
        legacy.person_id = user.person_id
        db.add(legacy)
    for row in legs + leases + seats:
        row.person_id = user.person_id
        db.add(row)
    db.flush()
    _adopt_numbers(db, numbers, user)
    _adopt_addresses(db, addresses, held, user, now)
    record(
        db,
        actor=user.login,
        source=session.source_ip,
        action="session.adopt_legacy",
        target=session.id,
        outcome="adopted",
        detail={
            "person": user.person_id,
            "totp_secrets": [s.person_id for s in legacy_secrets],
            "kept_secret_confirmed": kept.confirmed_at if kept else None,
            "sessions": [s.id for s in legacy_sessions],
            "callback_numbers": [n.id for n in numbers],
            "addresses": [a.ipv4 for a in addresses],
            "call_legs": [leg.id for leg in legs],
            "tunnel_leases": [lease.id for lease in leases],
            "seat_leases": [seat.id for seat in seats],
        },
        clock=lambda: now,
    )


Keyed = TypeVar("Keyed", CallbackNumber, AddressAssignment, CallLeg, TunnelLease, SeatLease)


def _theirs_of(db: Session, table: type[Keyed], names: set[str]) -> list[Keyed]:
    legacy = db.exec(select(table).where(col(table.person_id).startswith(LEGACY_PREFIX))).all()
    return [row for row in legacy if _theirs(row.person_id, names)]


def _adopt_numbers(db: Session, numbers: list[CallbackNumber], user: DirectoryUser) -> None:
    """A legacy number the person already holds (added again under the new key) is dropped: theirs is kept."""
    held = set(db.exec(select(CallbackNumber.e164).where(CallbackNumber.person_id == user.person_id)).all())
    for number in numbers:
        if number.e164 in held:
            db.delete(number)
            continue
        number.person_id, number.login = user.person_id, user.login
        held.add(number.e164)
        db.add(number)
    db.flush()


def _locked_addresses(
    db: Session, user: DirectoryUser, legacy_ids: set[str]
) -> tuple[AddressAssignment | None, list[AddressAssignment]]:
    """The person's address row and their legacy ones, locked (`ipam.lock_addresses`) and read again as committed.

    Locked before anything is read that depends on them (the tunnel leases) and before the sign-in's audit rows: a
    lease written beside it (`ipam.assign` holds the row, then waits for the audit chain's head) commits first and is
    seen, or waits for this sign-in and takes the row back after it. Read as they were, a legacy session's config
    download could take a legacy address back under its new lease just before it was released here."""
    ipam.lock_addresses(db, legacy_ids | {user.person_id})
    rows = db.exec(
        select(AddressAssignment)
        .where(col(AddressAssignment.person_id).in_(sorted(legacy_ids | {user.person_id})))
        .execution_options(populate_existing=True)
    ).all()
    held = next((row for row in rows if row.person_id == user.person_id), None)
    return held, [row for row in rows if row.person_id != user.person_id]


def _adopt_addresses(
    db: Session,
    addresses: list[AddressAssignment],
    held: AddressAssignment | None,
    user: DirectoryUser,
    now: datetime,
) -> None:
    """One address pair per person: the first legacy one when they hold none; the others are released to the pool
    (another agent may take them after the hold-back), except one a desired lease names (a live session from before
    migration 0008): released under it, it could pass to another agent while the tunnel carries it, so it stays as it
    is until a later sign-in finds that lease retired."""
    in_use = set(
        db.exec(
            select(TunnelLease.ipv4)
            .where(col(TunnelLease.ipv4).in_([address.ipv4 for address in addresses]))
            .where(TunnelLease.state == LeaseState.DESIRED)
        ).all()
    )
    for address in sorted(addresses, key=lambda a: a.ordinal):
        if held is None:
            address.person_id, address.login = user.person_id, user.login
            held = address
        elif address.released_at is None and address.ipv4 not in in_use:
            address.released_at = now
        db.add(address)
    db.flush()
