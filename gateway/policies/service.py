"""Import, export and read the policy in force.

An invalid document is refused with every problem's line and reason and changes nothing: the running policy stays.
Parsed documents are cached by version (the embedded default once), so evaluating a login costs no YAML parsing,
and a sign-in's evaluation by version and set of groups (`effective_policy`).
"""

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cache, lru_cache

from sqlalchemy import ColumnElement, bindparam, exists
from sqlmodel import Session, col, func, select

from gateway.audit.service import record
from gateway.clock import as_utc
from gateway.db import fits_column
from gateway.errors import TooLong
from gateway.events import nudge_after_commit
from gateway.policies.errors import InvalidPolicy
from gateway.policies.models import PolicyVersion
from policy import (
    EffectivePolicy,
    PolicyDocument,
    PolicyError,
    evaluate,
    load_default_policy,
    load_policy,
    names_without_dn,
)
from policy.document import DEFAULT_POLICY_FILE

POLICY_CHANGED = "policy.changed"
"""Nudged when a new version is in force (an import or a rollback); the payload is its number."""
_VersionKey = tuple[int, datetime]
_parsed: dict[_VersionKey, PolicyDocument] = {}
"""Parsed documents by version number and import time: the number alone is not enough, the same number names
another document in another database (a test's, or one restored from a backup of another gateway)."""


@cache
def _default_policy() -> PolicyDocument:
    """The embedded default, parsed once: it ships with the code (~45 ms of YAML per sign-in, /agent and launch)."""
    return load_default_policy()


def current_version(db: Session) -> PolicyVersion | None:
    return db.exec(select(PolicyVersion).order_by(col(PolicyVersion.version).desc()).limit(1)).first()


_VERSIONS = PolicyVersion.__table__  # type: ignore[attr-defined]
_NEWEST = select(_VERSIONS.c.version, _VERSIONS.c.created_at).order_by(_VERSIONS.c.version.desc()).limit(1)
"""Built once, a table statement: every sign-in, page and launch asks it, and only the newest version's key (building
the query and loading the whole row through the ORM cost ~0.9 ms of CPU a sign-in). Asked every time, never
remembered: an import on any node is in force for the very next request."""
_DOCUMENT = select(_VERSIONS.c.document).where(_VERSIONS.c.version == bindparam("version"))


_NEWEST_ROW = _NEWEST.subquery("newest")
_STILL_NEWEST = exists().where(
    _NEWEST_ROW.c.version == bindparam("policy_version"), _NEWEST_ROW.c.created_at == bindparam("policy_created_at")
)
_STILL_NONE = ~exists().where(_VERSIONS.c.version.is_not(None))


@dataclass(frozen=True, slots=True)
class _LastRead:
    """The newest version this process last read: its key, and its time as the database gave it (compared as it is
    stored: SQLite keeps a time without its zone)."""

    key: _VersionKey | None
    created_at: datetime | None


_last_read: _LastRead | None = None


def _in_force(db: Session) -> tuple[_VersionKey | None, PolicyDocument]:
    """The newest stored version's key and document, or no key and the embedded default when none was imported."""
    global _last_read  # what this process read last, for `assumed_policy`
    newest = db.execute(_NEWEST).first()
    if newest is None:
        _last_read = _LastRead(None, None)
        return None, _default_policy()
    key = (newest.version, as_utc(newest.created_at))
    if key not in _parsed:
        _parsed[key] = load_policy(db.execute(_DOCUMENT, {"version": newest.version}).scalar_one())
    _last_read = _LastRead(key, newest.created_at)
    return key, _parsed[key]


def current_policy(db: Session) -> PolicyDocument:
    """The newest stored version, or the embedded default policy when none was imported yet."""
    return _in_force(db)[1]


EVALUATIONS_KEPT = 1024
"""Sets of groups whose evaluation is kept, the least recently used forgotten first: far more than the sets people
of one call centre sign in with (a few dozen), each under the versions of the day."""
_EVALUATED_AT = datetime.fromtimestamp(0, UTC)
"""The time a kept evaluation is made at; each answer carries its own caller's time instead."""


@lru_cache(maxsize=EVALUATIONS_KEPT)
def _evaluation(version: _VersionKey | None, groups: frozenset[str]) -> EffectivePolicy:
    return evaluate(_default_policy() if version is None else _parsed[version], groups, _EVALUATED_AT)


def effective_policy(db: Session, groups: Iterable[str], now: datetime) -> EffectivePolicy:
    """The policy in force evaluated for ``groups`` at ``now``, as ``evaluate(current_policy(db), groups, now)``.

    The newest version's key is read at every call, so a version imported on any node counts at the very next
    request; the evaluation of one set of groups under one version (~0.25 ms of CPU at every sign-in) is kept, as
    it depends on nothing else (`policy.evaluate` depends on the set of groups alone, and on ``now`` only for the
    time it says it was made at, which is set to ``now`` here)."""
    if now.tzinfo is None:  # as `evaluate` refuses it; a kept evaluation never shows it the caller's time
        raise PolicyError("effective_policy needs a time-zone-aware 'now'; shifts are compared in UTC")
    version, _ = _in_force(db)
    return replace(_evaluation(version, frozenset(groups)), evaluated_at=now)


@dataclass(frozen=True, slots=True)
class AssumedPolicy:
    """An evaluation under the newest version this process last read, made without reading it again, and the
    condition (``still_newest``, bound with ``values``) that holds only while that version is still the newest: a
    statement that acts on the evaluation carries it, and does nothing when it does not hold."""

    effective: EffectivePolicy
    still_newest: ColumnElement[bool]
    values: dict[str, object]


def assumed_policy(groups: Iterable[str], now: datetime) -> AssumedPolicy | None:
    """`effective_policy` without its read of the newest version: the version this process read last is assumed,
    for a statement to confirm (`AssumedPolicy`); None before this process has read any.

    For a sign-in that the assumed version admits: the version is then confirmed by the statement that writes the
    session, after the bind, one round trip fewer. The caller reads the version (`effective_policy`) before any
    refusal and whenever the statement finds the version changed, so no answer rests on a version not confirmed."""
    last = _last_read
    if last is None:
        return None
    if now.tzinfo is None:
        raise PolicyError("assumed_policy needs a time-zone-aware 'now'; shifts are compared in UTC")
    effective = replace(_evaluation(last.key, frozenset(groups)), evaluated_at=now)
    if last.key is None:
        return AssumedPolicy(effective, _STILL_NONE, {})
    return AssumedPolicy(
        effective, _STILL_NEWEST, {"policy_version": last.key[0], "policy_created_at": last.created_at}
    )


def _groups_fit_directory(parsed: PolicyDocument, directory_kind: str) -> None:
    """With AD or OpenLDAP a group is named by its DN or SID: a bare name would match no group and grant nothing."""
    keys = list(parsed.groups)
    if parsed.team_scope is not None:  # team scope names groups too: a bare name there would scope to nobody
        scope = parsed.team_scope
        keys += [*scope.teams, *(group for groups in scope.teams.values() for group in groups), *scope.all_teams]
    names = names_without_dn(dict.fromkeys(keys))
    if names and directory_kind != "builtin":
        raise PolicyError(
            f"groups {', '.join(names)} are named by name, but with {directory_kind} a group is named by its DN "
            "(e.g. CN=SOHO-Agents,OU=Groups,DC=corp,DC=example) or SID: a name matches no directory group"
        )


def check_policy(document: str, directory_kind: str = "builtin") -> PolicyDocument:
    """The document parsed, or the ``PolicyError`` that ``import_policy`` would refuse it with (nothing stored,
    nothing audited: the import page's preview)."""
    parsed = load_policy(document)
    _groups_fit_directory(parsed, directory_kind)
    return parsed


def import_policy(
    db: Session,
    document: str,
    *,
    actor: str,
    source: str,
    now: datetime,
    comment: str = "",
    directory_kind: str = "builtin",
) -> PolicyVersion:
    """Store a new version; refused (audited, nothing changed) when invalid or when its group keys cannot name
    groups of the ``directory_kind`` in use. Once it commits, ``POLICY_CHANGED`` tells what follows the policy in
    live sessions (the tunnels' network scope)."""
    digest = hashlib.sha256(document.encode()).hexdigest()
    try:
        fits_column(comment, PolicyVersion, "comment")
        parsed = check_policy(document, directory_kind)
    except (PolicyError, TooLong) as error:
        record(
            db,
            actor=actor,
            source=source,
            action="policy.import",
            outcome="refused",
            detail={"sha256": digest, "problems": str(error)},
        )
        if isinstance(error, TooLong):
            raise
        raise InvalidPolicy(f"policy refused, the running policy is unchanged:\n{error}") from None
    number = (db.exec(select(func.max(PolicyVersion.version))).one() or 0) + 1
    version = PolicyVersion(version=number, document=document, created_by=actor, created_at=now, comment=comment)
    db.add(version)
    db.flush()
    _parsed[(number, as_utc(now))] = parsed
    record(
        db,
        actor=actor,
        source=source,
        action="policy.import",
        target=f"version {number}",
        outcome="success",
        detail={"sha256": digest, "comment": comment},
    )
    nudge_after_commit(db, POLICY_CHANGED, number)
    return version


def export_policy(db: Session) -> str:
    version = current_version(db)
    if version is not None:
        return version.document
    return DEFAULT_POLICY_FILE.read_text(encoding="utf-8")
