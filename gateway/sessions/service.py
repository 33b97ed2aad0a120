"""Start, find, touch and end home sessions. ``end_session`` is the one way any session ends (a take-over's:
``end_replaced_sessions``, the same marking and audit row for each of the person's earlier sessions).

Logout, idle and maximum time, a revoked certificate, a disabled account, an admin's "end now", an HR suspension:
all call ``end_session``, which marks the session *ending* with its reason, writes the audit row and, after commit,
nudges the workers (tunnel, seat, voice leg) to close their part; the ``sessions.endings`` worker marks it *ended*
once no child is live (``endings.py``). An ending session grants nothing and counts as live nowhere.
"""

import hashlib
import json
import secrets
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import sqlalchemy
from sqlalchemy import ColumnElement, Executable, Row, Update, bindparam, func, insert, update
from sqlalchemy.orm import configure_mappers, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.base import manager_of_class
from sqlalchemy.orm.util import identity_key
from sqlmodel import Session, col, select

from gateway.audit.service import AuditEntry, Carried, record, record_all
from gateway.clock import as_utc
from gateway.db import TAKE_TURN, serialize_on
from gateway.events import nudge_after_commit
from gateway.policies.service import AssumedPolicy
from gateway.sessions import throttle
from gateway.sessions.models import EndReason, HomeSession, SessionState

SESSION_ENDED = "session.ended"
"""Nudged when a session is ending (its children close on it); the payload is the session id."""
SESSION_STARTED = "session.started"
SESSION_GROUPS_CHANGED = "session.groups_changed"
"""Nudged when re-validation found a live session's directory groups changed; the payload is the session id."""
OVER = (SessionState.ENDING, SessionState.ENDED)
"""A session in either state has been ended: its cookie opens nothing, whatever its children still hold."""
ROLE_PAGES = {"agent": "/agent", "supervisor": "/supervisor", "security_admin": "/security-admin", "hr": "/hr"}
"""Each role's own page, in the order a person holding several roles lands on them."""


def sole_person_signed_in_with(db: Session, fingerprint: str) -> str | None:
    """The one person whose sessions signed in with the certificate of ``fingerprint``; None when no session did,
    when several people's did (a UPN passed from one to another), or when any session 0008 could not give a person
    did (``legacy:``, ``gateway.adoption.LEGACY_PREFIX``, a layer above: it may have been someone else). Migration
    0025's rule for binding a certificate issued before certificates were bound; a renewal of one follows it."""
    people = db.exec(
        select(HomeSession.person_id).where(HomeSession.cert_fingerprint == fingerprint).distinct().limit(2)
    ).all()
    if len(people) != 1 or people[0].startswith("legacy:"):
        return None
    return people[0]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


_SESSIONS = HomeSession.__table__  # type: ignore[attr-defined]
_MANAGER = manager_of_class(HomeSession)
_INSERT = insert(_SESSIONS).values({column.name: bindparam(f"new_{column.name}") for column in _SESSIONS.c})
_INSERT_TAKING_TURN = TAKE_TURN.add_cte(_INSERT.cte("new_session"))
"""PostgreSQL: the row of an active session, written in the statement that takes its person's turn for the
take-over (`end_replaced_sessions`): one round trip fewer at every sign-in."""


@lru_cache(maxsize=4)
def _inserting_if(still: ColumnElement[bool], taking_turn: bool) -> Executable:
    """PostgreSQL: the session's row written only while ``still`` holds (the policy version its evaluation assumed
    is still the newest: `policies.service.AssumedPolicy`), in one statement with, for an active session whose row
    was written, its person's turn, as `open_session` writes them; returns the number of rows written
    (``opened``)."""
    new_row = sqlalchemy.select(*(bindparam(f"new_{column.name}", type_=column.type) for column in _SESSIONS.c))
    written = (
        insert(_SESSIONS)
        .from_select([column.name for column in _SESSIONS.c], new_row.where(still))
        .returning(_SESSIONS.c.id)
        .cte("new_session")
    )
    rows_written = sqlalchemy.select(func.count()).select_from(written).scalar_subquery()
    opened = rows_written.label("opened")
    # The turn with the row alone: a sign-in whose version was no longer the newest writes nothing, takes no turn and
    # goes on to `open_session`.
    turn = sqlalchemy.case((rows_written > 0, TAKE_TURN.selected_columns[0])).label("turn")
    statement = sqlalchemy.select(turn, opened) if taking_turn else sqlalchemy.select(opened)
    return statement.add_cte(written)


@lru_cache(maxsize=4)
def _asking(condition: ColumnElement[bool]) -> Executable:
    """SQLite: whether ``condition`` holds, built once (a statement built at each call cost ~50 µs of CPU)."""
    return sqlalchemy.select(condition)


_TURN_TAKEN = "sohogw.take_over_turn"
"""In the session's ``info``: (the transaction that took a person's turn at `open_session`, the person)."""


def _take_over_turn(person_id: str) -> str:
    return f"take_over:{person_id}"


_FIELD_DEFAULTS = {
    name: field.get_default(call_default_factory=True)  # plain values (no list or dict), so taken once
    for name, field in HomeSession.model_fields.items()
    if not field.is_required()
}
_REQUIRED_FIELDS = HomeSession.model_fields.keys() - _FIELD_DEFAULTS.keys()


def new_home_session(**fields: Any) -> HomeSession:
    """A new session object, made as the ORM makes one it loads: its fields (defaults filled in) set directly.

    For `open_session` at every sign-in: the model's constructor sends each of its 35 fields through pydantic's and
    the ORM's attribute events, ~50 µs of CPU, to set them, and validates nothing (a table model is not validated).
    A name the model does not have, or a required field left out, is refused here (the constructor ignores the one
    and leaves the other unset, for the ``INSERT`` to fail on)."""
    unknown, missing = fields.keys() - HomeSession.model_fields.keys(), _REQUIRED_FIELDS - fields.keys()
    if unknown or missing:
        raise TypeError(f"HomeSession fields unknown: {sorted(unknown)}, missing: {sorted(missing)}")
    configure_mappers()  # as the constructor does (~2 µs once done): a first sign-in may come before any query
    session = _MANAGER.new_instance()
    session.__dict__.update(_FIELD_DEFAULTS, **fields)
    return session


def open_session(db: Session, session: HomeSession, *, give_back: throttle.GiveBack | None = None) -> str:
    """Store a new session with a fresh token and CSRF secret; returns the token for the cookie. An active one also
    takes its person's turn for the take-over, in the same statement on PostgreSQL. A sign-in's ``give_back`` of
    its throttle's attempts is written here on SQLite only, first, as `throttle.give_back` (its one writer: an
    independent write after the row would wait for this transaction); on PostgreSQL the session's audit append
    carries it (`audit_opening`), so that its rows, which every reservation on the person or the address waits for,
    are held only from the chain's lock to the commit.

    The row is written by a table statement and the object then joins ``db`` as that row, persistent as if loaded:
    its later changes are flushed as updates. Adding it and flushing it through the ORM's unit of work cost ~0.5 ms
    of CPU at every sign-in (the row is wide), several times the statement."""
    token = new_token()
    _write(db, session, token, give_back, None)
    return token


def open_session_under(
    db: Session, session: HomeSession, policy: AssumedPolicy, *, give_back: throttle.GiveBack | None = None
) -> str | None:
    """`open_session` for a session made under ``policy``, an evaluation of the version this process read last:
    written, with its turn (on SQLite its give-back), only if that version is still the newest when the row is
    written (on PostgreSQL in the same statement, which then reads the version instead of a statement of its own
    before). None, with nothing written, when it is not: the caller reads the policy again and judges the sign-in
    anew."""
    token = new_token()
    return token if _write(db, session, token, give_back, policy) else None


def _write(
    db: Session, session: HomeSession, token: str, give_back: throttle.GiveBack | None, policy: AssumedPolicy | None
) -> bool:
    """`open_session`'s and `open_session_under`'s writing; whether the row was written."""
    postgres, taking_turn = db.get_bind().dialect.name == "postgresql", session.state is SessionState.ACTIVE
    if policy is not None and not postgres and not db.execute(_asking(policy.still_newest), policy.values).scalar():
        return False  # SQLite: no round trip to save; asked first, as the give-back below comes before the row
    session.id = uuid.uuid4().hex
    session.token_sha256 = _digest(token)
    session.csrf_token = secrets.token_urlsafe(24)
    row = {f"new_{column.name}": getattr(session, column.name) for column in _SESSIONS.c}
    if give_back is not None and not postgres:
        throttle.give_back(db, give_back.keys, forget_person=give_back.forget_person)
    if postgres and taking_turn:
        row["turn_name"] = _take_over_turn(session.person_id)
    if postgres and policy is not None:
        statement = _inserting_if(policy.still_newest, taking_turn)
        if not db.connection().execute(statement, {**row, **policy.values}).one().opened:
            return False
    else:
        db.connection().execute(_INSERT_TAKING_TURN if postgres and taking_turn else _INSERT, row)
    if postgres and taking_turn:
        db.info[_TURN_TAKEN] = (db.get_nested_transaction() or db.get_transaction(), session.person_id)
    make_transient_to_detached(session)
    db.add(session)
    if session.state is SessionState.ACTIVE:
        nudge_after_commit(db, SESSION_STARTED, session.id)
    return True


def rotate_token(db: Session, session: HomeSession) -> str:
    """A new cookie value for the same session (after the second factor), the old one stops working."""
    token = new_token()
    session.token_sha256 = _digest(token)
    session.csrf_token = secrets.token_urlsafe(24)
    db.add(session)
    db.flush()
    return token


_MARK_ENDING = (
    update(_SESSIONS)
    .values(
        state=SessionState.ENDING,
        end_reason=bindparam("end_reason_given"),
        ended_at=bindparam("ended_at_given"),
        ended_by=bindparam("ended_by_given"),
    )
    .returning(_SESSIONS.c.id, _SESSIONS.c.login, _SESSIONS.c.person_id, _SESSIONS.c.created_at)
)
_MARK_ENDING_ONE = _MARK_ENDING.where(_SESSIONS.c.id == bindparam("ended_session"), _SESSIONS.c.state.not_in(OVER))
_MARK_ENDING_REPLACED = _MARK_ENDING.where(
    _SESSIONS.c.person_id == bindparam("of_person"),
    _SESSIONS.c.state == SessionState.ACTIVE,
    _SESSIONS.c.id != bindparam("kept_session"),
)
"""Built once, table statements: marking a session ending through the ORM (a flush of the wide row) and, for a
take-over, loading the person's live sessions first cost ~1 ms of CPU at every sign-in that replaces a session.
Each marks only a session not ended yet, judged on the row as committed (PostgreSQL re-reads a row another
transaction changed meanwhile), and returns what the audit row names."""
_ENDED_FIELDS = ("state", "end_reason", "ended_at", "ended_by")


def _show_ending(session: HomeSession, reason: EndReason, actor: str, now: datetime) -> None:
    """The object says what its row now says, as if loaded again (nothing left for the ORM to flush)."""
    for name, value in zip(_ENDED_FIELDS, (SessionState.ENDING, reason, now, actor), strict=True):
        set_committed_value(session, name, value)


def _mark_ending(
    db: Session, statement: Update, values: Mapping[str, object], reason: EndReason, actor: str, now: datetime
) -> list[Row[tuple[str, str, str, datetime]]]:
    """Mark the sessions ``statement`` picks ending, and the objects of them ``db`` holds; those marked, oldest
    first."""
    db.flush()  # the objects' pending changes first, as an ORM update would have them
    given = {"end_reason_given": reason, "ended_at_given": now, "ended_by_given": actor}
    marked = db.connection().execute(statement, {**values, **given}).all()
    for row in marked:
        held = db.identity_map.get(identity_key(HomeSession, row.id))
        if held is not None:
            _show_ending(held, reason, actor, now)
    return sorted(marked, key=lambda row: as_utc(row.created_at))


def _ending_entry(
    ended: Row[tuple[str, str, str, datetime]],
    reason: EndReason,
    actor: str,
    source: str,
    detail: dict[str, object] | None,
) -> AuditEntry:
    """The audit row of a session marked ending."""
    return AuditEntry(
        actor=actor,
        source=source,
        action="session.end",
        target=ended.login,
        outcome=reason.value,
        detail={"session": ended.id, "person": ended.person_id, **(detail or {})},
    )


def end_session(
    db: Session,
    session: HomeSession,
    reason: EndReason,
    *,
    actor: str,
    now: datetime,
    source: str = "",
    detail: dict[str, object] | None = None,
) -> HomeSession:
    """Mark the session ending with its reason and audit it; ending an ending or ended session changes nothing,
    also when another transaction ended it after ``session`` was read (it then says so, re-read)."""
    end_sessions(db, [(session, reason)], actor=actor, now=now, source=source, detail=detail)
    return session


def end_sessions(
    db: Session,
    endings: Sequence[tuple[HomeSession, EndReason]],
    *,
    actor: str,
    now: datetime,
    source: str = "",
    detail: dict[str, object] | None = None,
    details: Mapping[str, dict[str, object]] | None = None,
) -> int:
    """`end_session` for each of several sessions, in this order; returns how many it ended (``details``: a
    session's own audit detail by its id, in place of ``detail``, as a dead node's pass names each one's node).
    Every one is marked before the first is audited, all in one append: the chain's lock, held to the commit once
    taken, is never held while waiting for a session's row. A take-over holds the row of the session it ends while
    it waits for the chain, and a pass audited ending by ending then waited for that row holding the chain (a
    deadlock; attacker review, `test_sweep_beside_a_sign_in.py`, `test_node_death_beside_a_sign_in.py`)."""
    entries = []
    for session, reason in endings:
        if session.state in OVER:
            continue
        marked = _mark_ending(db, _MARK_ENDING_ONE, {"ended_session": session.id}, reason, actor, now)
        if not marked:  # ended meanwhile: it says so, re-read
            db.refresh(session, _ENDED_FIELDS)
            continue
        _show_ending(session, reason, actor, now)  # also when ``session`` is not the object ``db`` holds
        # Nudged before the audit row, not after: the row sends the transaction's nudges first (on PostgreSQL in its
        # statement), and once it is written every other appender waits for this transaction's commit.
        nudge_after_commit(db, SESSION_ENDED, session.id)
        own = detail if details is None else details.get(session.id, detail)
        entries.append(_ending_entry(marked[0], reason, actor, source, own))
    record_all(db, entries)
    return len(entries)


def audit_opening(
    db: Session, session: HomeSession, now: datetime, *, then: AuditEntry, give_back: throttle.GiveBack
) -> None:
    """The audit of a session `open_session` just wrote, ``then`` its sign-in's event: for an active one after its
    take-over's (`end_replaced_sessions`). On PostgreSQL the append carries the sign-in's ``give_back`` (on SQLite
    `open_session` gave it back first): the throttle's rows are taken after the person's turn and the chain's lock,
    the order a second factor's `throttle.forget` takes them in."""
    carrying = Carried(give_back.as_part, give_back.values) if db.get_bind().dialect.name == "postgresql" else None
    if session.state is SessionState.ACTIVE:
        end_replaced_sessions(db, session, now, then=then, carrying=carrying)
    else:
        record_all(db, [then], carrying=carrying)


def end_replaced_sessions(
    db: Session, session: HomeSession, now: datetime, *, then: AuditEntry | None = None, carrying: Carried | None = None
) -> None:
    """The take-over: end the person's other live sessions as replaced by ``session`` (by its login, from its
    address), each audited and nudged as by `end_session`, found and marked in one statement. ``then``, the event
    of the step that took over (the sign-in), is audited after their rows and in the same append: on PostgreSQL one
    statement for all of them, under the chain's lock, with what it is ``carrying`` (`audit.service.Carried`).

    Two sign-ins of one person at once take turns from here to their commit (`db.serialize_on`), before their audit
    rows take the chain's lock: else each could hold a session the other ends while waiting on the chain the other
    holds (a deadlock on PostgreSQL), or miss the session the other just opened (two live sessions for one person).
    The turn is taken here unless this very transaction took it at `open_session` (a savepoint rolled back since
    may have given it up: then again), so the statement sees every session an earlier turn committed."""
    transaction = db.get_nested_transaction() or db.get_transaction()
    if db.info.get(_TURN_TAKEN) != (transaction, session.person_id) or transaction is None or not transaction.is_active:
        serialize_on(db, _take_over_turn(session.person_id))
    values = {"of_person": session.person_id, "kept_session": session.id}
    marked = _mark_ending(db, _MARK_ENDING_REPLACED, values, EndReason.REPLACED, session.login, now)
    for ended in marked:
        nudge_after_commit(db, SESSION_ENDED, ended.id)  # before the append, as in `end_session`
    entries = [_ending_entry(ended, EndReason.REPLACED, session.login, session.source_ip, None) for ended in marked]
    record_all(db, entries if then is None else [*entries, then], carrying=carrying)


def session_for_token(db: Session, token: str | None, now: datetime) -> HomeSession | None:
    """The live (or second-factor-pending) session behind a cookie, ending it here if it ran out of time."""
    if not token:
        return None
    session = db.exec(select(HomeSession).where(HomeSession.token_sha256 == _digest(token))).first()
    if session is None or session.state in OVER:
        return None
    if now >= as_utc(session.expires_at):
        end_session(db, session, EndReason.MAX_LENGTH, actor="system", now=now)
        return None
    if now - as_utc(session.last_seen_at) > timedelta(seconds=session.idle_timeout_seconds):
        end_session(db, session, EndReason.IDLE, actor="system", now=now)
        return None
    return session


def ended_reason_for_token(db: Session, token: str | None) -> EndReason | None:
    """Why the session behind a cookie ended (None for no such session, or one not ended), so the sign-in page can
    tell the person — "your certificate was revoked" rather than a bare form."""
    if not token:
        return None
    session = db.exec(select(HomeSession).where(HomeSession.token_sha256 == _digest(token))).first()
    return session.end_reason if session is not None and session.state in OVER else None


def touch(db: Session, session: HomeSession, now: datetime) -> None:
    """Note activity; written at most every 15 s per session to keep page loads from being writes."""
    if now - as_utc(session.last_seen_at) >= timedelta(seconds=15):
        session.last_seen_at = now
        db.add(session)


_LIVE = select(HomeSession).where(HomeSession.state == SessionState.ACTIVE).order_by(col(HomeSession.created_at))
_LIVE_OF_LOGIN = _LIVE.where(col(HomeSession.login) == bindparam("login"))
"""Built once (building the query cost ~0.2 ms of CPU)."""


def live_sessions(db: Session, login: str | None = None) -> list[HomeSession]:
    """Active sessions, oldest first: all, or those shown under an account name."""
    return list(db.exec(_LIVE if login is None else _LIVE_OF_LOGIN, params={"login": login}).all())


def get_session(db: Session, session_id: str) -> HomeSession | None:
    return db.get(HomeSession, session_id)


def end_idle_and_expired(db: Session, now: datetime) -> int:
    """The scheduled sweep: sessions nobody used within their idle timeout, or past their maximum length; returns how
    many it ended, all audited in one append (`end_sessions`: a take-over of one of them beside it)."""
    due: list[tuple[HomeSession, EndReason]] = []
    for session in live_sessions(db) + list(
        db.exec(select(HomeSession).where(HomeSession.state == SessionState.PENDING_SECOND_FACTOR)).all()
    ):
        if now >= as_utc(session.expires_at):
            due.append((session, EndReason.MAX_LENGTH))
        elif now - as_utc(session.last_seen_at) > timedelta(seconds=session.idle_timeout_seconds):
            idle = EndReason.IDLE if session.state is SessionState.ACTIVE else EndReason.SECOND_FACTOR_ABANDONED
            due.append((session, idle))
    return end_sessions(db, due, actor="system", now=now)


def landing_page(session: HomeSession | None) -> str:
    """The page a person lands on: their first role's page, else the sign-in form."""
    if session is None:
        return "/login"
    for role, page in ROLE_PAGES.items():
        if role in session.role_set:
            return page
    return "/login"


def policy_groups(session: HomeSession) -> list[str]:
    """The group identifiers (DNs, AD SIDs) the session's policy is evaluated with."""
    return list(json.loads(session.policy_groups))


def groups_changed(session: HomeSession, names: list[str], identifiers: list[str]) -> bool:
    """Whether the directory's group names or identifiers differ from the session's (as sets: a directory lists them
    in no set order)."""
    return set(identifiers) != set(policy_groups(session)) or set(names) != set(json.loads(session.groups))


def follow_groups(db: Session, session: HomeSession, names: list[str], identifiers: list[str]) -> bool:
    """Store the directory groups re-validation just read for a live session, when they changed; audited and nudged,
    so what the policy grants by group (the tunnel's network scope) follows without a new sign-in. Whether anything
    changed."""
    if not groups_changed(session, names, identifiers):
        return False
    held = policy_groups(session)
    record(
        db,
        actor="revalidation",
        action="session.groups",
        target=session.login,
        outcome="changed",
        detail={
            "session": session.id,
            "person": session.person_id,
            "added": sorted(set(identifiers) - set(held)),
            "removed": sorted(set(held) - set(identifiers)),
        },
    )
    session.groups = json.dumps(names, ensure_ascii=False)
    session.policy_groups = json.dumps(identifiers, ensure_ascii=False)
    db.add(session)
    nudge_after_commit(db, SESSION_GROUPS_CHANGED, session.id)
    return True
