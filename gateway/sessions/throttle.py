"""Brute-force throttling per person and per source address, reserved before the directory is asked.

Each guess first reserves an attempt on its keys (the person and the source: an IPv4 address or an IPv6 /64) in a
statement of its own that commits before the directory is asked. The reservation is one conditional upsert
for all its keys (``INSERT … ON CONFLICT DO UPDATE SET attempts = attempts + 1 WHERE attempts < limit``);
PostgreSQL's row lock (judging the condition on the row as committed by the one before) and SQLite's single writer
make concurrent reservations take turns, so at most ``limit`` guesses per window reach the directory, whatever the
concurrency and however many gateway nodes share the database. Kept in the database, not in memory, for that reason.
The window is fixed: it starts with the first attempt and a key's count starts again once the window has passed.
"""

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from sqlalchemy import CTE, TextClause, TextualSelect, bindparam, text, update
from sqlmodel import Session, col, delete, select

from gateway.db import engine_of, independent_writes
from gateway.sessions.errors import TooManyAttempts
from gateway.sessions.models import LoginAttempt, LoginThrottle


@dataclass(frozen=True)
class ThrottleLimits:
    per_account: int = 5
    per_source: int = 20
    window: timedelta = timedelta(minutes=15)


def account_key(login: str) -> str:
    """A typed name folded as AD folds it: ``CORP\\alice``, ``alice@corp.example`` and ``Alice`` are one name.
    Used for the failure record and for adopting legacy rows."""
    return login.rsplit("\\", 1)[-1].split("@", 1)[0].strip().casefold()[:255]


def person_key(person_id: str) -> str:
    return f"person:{person_id}"


IPV6_SOURCE_PREFIX = 64
"""An IPv6 home or host gets a whole /64 and may take any address in it: one source is its /64, else a sprayer
that rotates addresses would never meet the per-address limit."""


def source_key(source_ip: str) -> str:
    """The source an attempt counts on: an IPv4 address (also when it comes IPv4-mapped in IPv6), an IPv6 /64, or
    the text as given when it is no address (a test client's name)."""
    try:
        address = ipaddress.ip_address(source_ip.strip())
    except ValueError:
        return f"source:{source_ip}"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if isinstance(address, ipaddress.IPv6Address):
        return f"source:{ipaddress.IPv6Network((address, IPV6_SOURCE_PREFIX), strict=False)}"
    return f"source:{address}"


# The statements are built once, with bound parameters, and run as table statements: building an ORM update() at
# each call and synchronising the session's objects with it cost about 0.9 ms of CPU a statement, several times the
# database's own work.
_THROTTLE = LoginThrottle.__table__  # type: ignore[attr-defined]
_MOST_KEYS = 2
"""A reservation names the person, the source address, or both."""


def _count_one_on_each(keys: int) -> TextualSelect:
    """One attempt counted on each of ``keys`` keys (``key_<i>``, limit ``limit_<i>``), in one statement.

    A key without a row gets one with its first attempt. On a row that exists (or that a concurrent first attempt
    has just inserted: ``ON CONFLICT`` waits for it instead of failing), a window that has passed starts again with
    the attempt, else the attempt counts if there is room; a key without room changes nothing. Returns the keys it
    counted on, with the window each counted in. The rows are taken in the order of the values, which the caller
    sorts by key. Every SET and the WHERE read the row as it was before this attempt.

    Written as SQL (the same in PostgreSQL and SQLite): SQLAlchemy does not cache the compiled form of an insert of
    several rows, and compiling this one at each sign-in cost ~0.6 ms of CPU, more than the statement it saves."""
    rows = ", ".join(f"(:key_{i}, :now, 1)" for i in range(keys))
    limit = " ".join(f"WHEN :key_{i} THEN :limit_{i}" for i in range(keys))
    expired = "login_throttle.window_started_at <= :window_began_before"
    when = _THROTTLE.c.window_started_at.type
    return (
        text(
            # Only placeholders are formatted in; every value is bound.
            f'INSERT INTO login_throttle ("key", window_started_at, attempts) VALUES {rows} '  # noqa: S608
            f'ON CONFLICT ("key") DO UPDATE SET '
            f"attempts = CASE WHEN {expired} THEN 1 ELSE login_throttle.attempts + 1 END, "
            f"window_started_at = CASE WHEN {expired} THEN :now ELSE login_throttle.window_started_at END "
            f'WHERE {expired} OR login_throttle.attempts < CASE login_throttle."key" {limit} END '
            f'RETURNING "key", window_started_at'
        )
        .bindparams(bindparam("now", type_=when), bindparam("window_began_before", type_=when))
        .columns(_THROTTLE.c.key, _THROTTLE.c.window_started_at)
    )


def _give_one_back_on_each(keys: int, returning: str = "", only_if: str = "") -> TextClause:
    """One attempt given back on each of ``keys`` keys (``key_<i>``), or the count cleared on the one named
    ``forgotten`` (NULL for none), in one statement (``returning`` its ``RETURNING`` clause, if any; ``only_if`` a
    condition it is written under, if any).

    Written as the reservation is, an upsert, so that it takes the rows in the order of the values as the
    reservation does (an UPDATE takes them in whatever order its scan meets them: two sign-ins could then each hold
    the row the other waits for). A key whose row went meanwhile (pruned) gets one that counts nothing, its window
    long over, which is what having no row means."""
    values = "VALUES " + ", ".join(f"(:key_{i}, :long_ago, 0)" for i in range(keys))
    rows = f"SELECT * FROM ({values}) AS given WHERE {only_if}" if only_if else values  # noqa: S608 - no value
    return text(
        # Only placeholders and the caller's constant condition are formatted in; every value is bound.
        f'INSERT INTO login_throttle ("key", window_started_at, attempts) {rows} '
        f'ON CONFLICT ("key") DO UPDATE SET '
        f'attempts = CASE login_throttle."key" WHEN :forgotten THEN 0 ELSE login_throttle.attempts - 1 END '
        f"WHERE login_throttle.attempts > 0 {returning}"
    ).bindparams(bindparam("long_ago", type_=_THROTTLE.c.window_started_at.type))


_COUNT_ONE_ON_EACH = {keys: _count_one_on_each(keys) for keys in range(1, _MOST_KEYS + 1)}
_GIVE_ONE_BACK_ON_EACH = {keys: _give_one_back_on_each(keys) for keys in range(1, _MOST_KEYS + 2)}
"""Up to one key more than a reservation: the person's count may be cleared beside the keys given back."""


@lru_cache(maxsize=8)
def _given_back_on_each(keys: int, only_if: str) -> CTE:
    return _give_one_back_on_each(keys, 'RETURNING "key"', only_if).columns(_THROTTLE.c.key).cte("given_back")


_LONG_AGO = datetime(1970, 1, 1, tzinfo=UTC)
_TAKE_BACK = (
    update(_THROTTLE)
    .where(
        _THROTTLE.c.key == bindparam("throttle_key"),
        _THROTTLE.c.window_started_at == bindparam("window"),
        _THROTTLE.c.attempts > 0,
    )
    .values(attempts=_THROTTLE.c.attempts - 1)
)
"""A refused reservation's attempt on a key that had room, taken back from the window it was counted in (once that
window has passed and started again, it holds no attempt of this reservation). A count cleared meanwhile (the person
signed in) holds none either: it stays at 0, never below, which would be an attempt over the limit."""
_CLEAR = update(_THROTTLE).where(_THROTTLE.c.key == bindparam("throttle_key")).values(attempts=0)


def reserve(db: Session, keys: Sequence[tuple[str, int]], now: datetime, limits: ThrottleLimits, message: str) -> None:
    """Reserve one attempt on every ``(key, limit)`` or none, committed before the directory is asked and outside
    the caller's transaction (which may run for as long as the directory takes); raise TooManyAttempts when one is
    full. A refused guess keeps its attempt; one that opens a session gives it back (``give_back``), and a completed
    sign-in clears the person's count (``forget``).

    One statement for all the keys, first attempts included, as independent writes (``db.independent_writes``): on
    PostgreSQL it commits by itself, without the ``BEGIN`` and ``COMMIT`` round trips. When it counted on fewer
    keys than it named, one was full, and the attempts it counted on the others are taken back before the refusal
    (on SQLite the refusal rolls them back anyway). Until then a concurrent guess may find such a key one fuller
    than it will be, and be refused on its last attempt: never let through one more."""
    ordered = sorted(keys)
    values: dict[str, object] = {"now": now, "window_began_before": now - limits.window}
    for i, (key, limit) in enumerate(ordered):
        values |= {f"key_{i}": key, f"limit_{i}": limit}
    with independent_writes(engine_of(db)) as own:
        counted = own.execute(_COUNT_ONE_ON_EACH[len(ordered)], values).all()
        if len(counted) != len(ordered):
            for key, window in counted:
                own.execute(_TAKE_BACK, {"throttle_key": key, "window": window})
            raise TooManyAttempts(message)


def give_back(db: Session, keys: Sequence[tuple[str, int]], *, forget_person: str | None = None) -> None:
    """Return the attempts of a guess known to be right (only refusals stay counted); with ``forget_person`` also
    clear that person's count (a sign-in complete without a second factor, as `forget`).

    Outside the session's transaction, as independent writes (``db.independent_writes``): these are the hottest
    rows of a sign-in (every attempt on the person or the address updates them), and a transaction that goes on to
    wait for the audit chain keeps them locked meanwhile (PostgreSQL's row locks). Should that transaction then
    fail, the right guess has its attempt back anyway. One statement for all the keys, whole alone (each key's count
    one lower, or cleared), so no transaction binds it: on PostgreSQL it commits by itself, without the ``BEGIN``
    and ``COMMIT`` round trips. It takes the rows in the order ``reserve`` takes them in.

    A sign-in on PostgreSQL writes it in its audit append instead (`GiveBack.as_part`,
    `sessions.service.audit_opening`): one round trip fewer, for rows held from the audit chain's lock to that
    commit (a reservation on the same person or address waits for it) and kept counted should it fail.
    """
    given = GiveBack(keys, forget_person)
    with independent_writes(engine_of(db)) as own:
        own.execute(_GIVE_ONE_BACK_ON_EACH[len(given.ordered_keys)], given.values)


@dataclass(frozen=True, slots=True)
class GiveBack:
    """The attempts a right guess gives back (`give_back`), for a statement of the caller's to carry (`as_part`)."""

    keys: Sequence[tuple[str, int]]
    forget_person: str | None = None

    @property
    def forgotten_key(self) -> str | None:
        return person_key(self.forget_person) if self.forget_person is not None else None

    @property
    def ordered_keys(self) -> list[str]:
        forgotten = self.forgotten_key
        return sorted({key for key, _ in self.keys} | ({forgotten} if forgotten else set()))

    @property
    def values(self) -> dict[str, object]:
        values: dict[str, object] = {"forgotten": self.forgotten_key, "long_ago": _LONG_AGO}
        return values | {f"key_{i}": key for i, key in enumerate(self.ordered_keys)}

    def as_part(self, only_if: str) -> CTE:
        """PostgreSQL: `give_back`'s upsert as a data-modifying ``WITH`` of another statement (bound with
        ``values``), returning the keys it changed; a statement that references it (a count of its rows) has it
        run in full. Nothing is given back where ``only_if`` (a constant SQL condition of the caller's, which may
        name the statement's other parts) does not hold."""
        return _given_back_on_each(len(self.ordered_keys), only_if)


def record_failure(db: Session, login: str, source_ip: str, now: datetime, reason: str) -> None:
    """Keep the failure for the supervision alert rules (the throttle itself counts reservations)."""
    db.add(LoginAttempt(login=account_key(login), source_ip=source_ip, at=now, reason=reason))
    db.flush()


def forget(db: Session, person_id: str) -> None:
    """A completed sign-in clears the person's reservations (not the address's). The row stays at zero rather than
    going: the person's next sign-in then counts on it with one UPDATE instead of inserting it again."""
    db.execute(_CLEAR, {"throttle_key": person_key(person_id)})


def prune(db: Session, now: datetime, limits: ThrottleLimits) -> None:
    """Delete the windows that have passed. A row another transaction holds is left to the next prune, not waited
    for: on PostgreSQL a sign-in's give-back (its audit append's, `sessions.service.audit_opening`) and a second
    factor's `forget` hold their rows from the audit chain's lock to the commit, and the sweep that prunes may hold
    a session row or the chain itself; skipping costs nothing but a row's wait for the next pass."""
    since = now - limits.window
    db.exec(delete(LoginAttempt).where(col(LoginAttempt.at) <= since))
    passed = select(LoginThrottle.key).where(col(LoginThrottle.window_started_at) <= since)
    db.exec(delete(LoginThrottle).where(col(LoginThrottle.key).in_(passed.with_for_update(skip_locked=True))))
