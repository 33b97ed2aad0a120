"""A live lease's scope follows the policy in force and its session's groups, on SQLite and PostgreSQL: the
``vpn.scope`` worker rewrites the leases whose scope changed, audits each with the old and new scope, and nudges the
VPN for them alone; a policy that grants the same scope rewrites, audits and nudges nothing."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine
from sqlmodel import select

from gateway.audit.models import AuditEvent
from gateway.db import session_scope
from gateway.events import listen, unlisten
from gateway.policies.service import POLICY_CHANGED, import_policy
from gateway.sessions.models import EndReason, HomeSession
from gateway.sessions.service import SESSION_GROUPS_CHANGED, end_session, follow_groups
from gateway.vpn.leases import LEASE_WRITTEN, lease_for_session
from gateway.vpn.models import TunnelLease
from gateway.vpn.settings import VpnSettings
from gateway.vpn.workers import TunnelScopes
from gateway.workers.contract import Nudge
from tests.gateway.vpn.agents import agent_session
from tests.gateway.vpn.world import DEFAULT_POLICY
from tests.support.workers import one_pass
from tests.vpn.keys import key_pair

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
PORTAL = ["10.77.0.1/32", "tcp", 443]
TRUST = ["172.30.0.0/24", "tcp", 8081]
LINES = {tuple(PORTAL): "10.77.0.1/32 443/tcp", tuple(TRUST): "172.30.0.0/24 8081/tcp"}


def _policy(agents: list[list[Any]], readers: list[list[Any]] | None = None, comment: str = "") -> str:
    """The default policy with the agents' network scope (and a role-less group granting ``readers``)."""
    policy = yaml.safe_load(DEFAULT_POLICY.read_text())
    policy["groups"]["SOHO-Agents"]["network_scope"] = [LINES[tuple(item)] for item in agents]
    if readers is not None:
        policy["groups"]["Trust-Readers"] = {"network_scope": [LINES[tuple(item)] for item in readers]}
    return yaml.safe_dump(policy) + (f"# {comment}\n" if comment else "")


def _import(engine: Engine, document: str) -> None:
    with session_scope(engine) as db:
        import_policy(db, document, actor="secadmin", source="test", now=NOW)


@pytest.fixture
def heard() -> Iterator[list[tuple[str, Any]]]:
    """The nudges published (after their commit) on the topics this feature sends."""
    seen: list[tuple[str, Any]] = []

    def hear(topic: str, payload: Any) -> None:
        seen.append((topic, payload))

    topics = (POLICY_CHANGED, SESSION_GROUPS_CHANGED, LEASE_WRITTEN)
    for topic in topics:
        listen(topic, hear)
    yield seen
    for topic in topics:
        unlisten(topic, hear)


def _leased(engine: Engine, login: str, groups: tuple[str, ...] = ("SOHO-Agents",)) -> str:
    with session_scope(engine) as db:
        session, _ = agent_session(db, login, NOW, wireguard_key=key_pair()[1], groups=groups)
        assert lease_for_session(db, session, NOW, VpnSettings()) is not None
        return session.id


def _scopes(engine: Engine) -> dict[str, list[list[Any]]]:
    with session_scope(engine) as db:
        return {lease.login: json.loads(lease.scope) for lease in db.exec(select(TunnelLease))}


def _rescoped_rows(engine: Engine) -> list[dict[str, Any]]:
    with session_scope(engine) as db:
        query = select(AuditEvent).where(AuditEvent.action == "vpn.lease", AuditEvent.outcome == "rescoped")
        return [{"target": row.target, **json.loads(row.detail)} for row in db.exec(query)]


def test_a_narrowed_policy_rewrites_and_audits_each_live_lease_and_nudges_the_vpn_for_it(
    engine: Engine, heard: list[tuple[str, Any]]
) -> None:
    _import(engine, _policy([PORTAL, TRUST]))
    li, wang = _leased(engine, "li.na"), _leased(engine, "wang.fang")
    ended = _leased(engine, "zhao.lei")
    with session_scope(engine) as db:
        end_session(db, db.get_one(HomeSession, ended), EndReason.LOGOUT, actor="zhao.lei", now=NOW)
    assert _scopes(engine) == {"li.na": [PORTAL, TRUST], "wang.fang": [PORTAL, TRUST], "zhao.lei": [PORTAL, TRUST]}
    heard.clear()
    _import(engine, _policy([PORTAL]))
    assert heard == [(POLICY_CHANGED, 2)]  # published once the import committed
    one_pass(engine, TunnelScopes(lambda: NOW), [Nudge(POLICY_CHANGED, 2)])
    assert _scopes(engine) == {"li.na": [PORTAL], "wang.fang": [PORTAL], "zhao.lei": [PORTAL, TRUST]}  # ended: kept
    assert sorted(heard[1:]) == sorted([(LEASE_WRITTEN, li), (LEASE_WRITTEN, wang)])
    rows = sorted(_rescoped_rows(engine), key=lambda row: row["target"])
    assert [(r["target"], r["session"], r["old"], r["new"]) for r in rows] == [
        ("li.na", li, [PORTAL, TRUST], [PORTAL]),
        ("wang.fang", wang, [PORTAL, TRUST], [PORTAL]),
    ]
    _import(engine, _policy([PORTAL, TRUST]))  # widened again: applied the same way
    one_pass(engine, TunnelScopes(lambda: NOW))  # the safety net's pass (no nudge) finds it too
    assert _scopes(engine)["li.na"] == [PORTAL, TRUST] and len(_rescoped_rows(engine)) == 4


def test_a_policy_granting_the_same_scope_rewrites_audits_and_nudges_nothing(
    engine: Engine, heard: list[tuple[str, Any]]
) -> None:
    _import(engine, _policy([PORTAL, TRUST]))
    _leased(engine, "li.na")
    _import(engine, _policy([PORTAL, TRUST], comment="only a comment changed"))
    heard.clear()
    one_pass(engine, TunnelScopes(lambda: NOW), [Nudge(POLICY_CHANGED, 2)])
    assert heard == [] and _rescoped_rows(engine) == []
    assert _scopes(engine) == {"li.na": [PORTAL, TRUST]}


def test_changed_groups_rescope_that_session_alone(engine: Engine, heard: list[tuple[str, Any]]) -> None:
    _import(engine, _policy([PORTAL], readers=[TRUST]))
    li = _leased(engine, "li.na", ("SOHO-Agents", "Trust-Readers"))
    _leased(engine, "wang.fang", ("SOHO-Agents", "Trust-Readers"))
    with session_scope(engine) as db:
        # what re-validation does once the directory no longer lists li.na in Trust-Readers
        assert follow_groups(db, db.get_one(HomeSession, li), ["SOHO-Agents"], ["SOHO-Agents"])
    assert heard[-1] == (SESSION_GROUPS_CHANGED, li)
    # the nudge names li.na alone: wang.fang's lease is not even looked at (its groups still grant the trust host)
    one_pass(engine, TunnelScopes(lambda: NOW), [Nudge(SESSION_GROUPS_CHANGED, li)])
    assert _scopes(engine) == {"li.na": [PORTAL], "wang.fang": [PORTAL, TRUST]}
    assert [(r["target"], r["old"], r["new"]) for r in _rescoped_rows(engine)] == [("li.na", [PORTAL, TRUST], [PORTAL])]
    with session_scope(engine) as db:
        assert not follow_groups(db, db.get_one(HomeSession, li), ["SOHO-Agents"], ["SOHO-Agents"])  # no change
        changed = db.exec(select(AuditEvent).where(AuditEvent.action == "session.groups")).all()
    assert [(row.outcome, json.loads(row.detail)["removed"]) for row in changed] == [("changed", ["Trust-Readers"])]
