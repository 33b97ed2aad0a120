"""Two nodes told of one policy change at once (PostgreSQL delivers the nudge to both): each lease is rewritten and
audited once. Both passes read the leases before either locks them; the second then waits for the first's commit and
finds nothing left to change."""

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import yaml
from sqlalchemy import Engine, event
from sqlmodel import Session, select

from gateway.audit.models import AuditEvent
from gateway.db import session_scope
from gateway.policies.service import POLICY_CHANGED, import_policy
from gateway.vpn.leases import lease_for_session
from gateway.vpn.models import TunnelLease
from gateway.vpn.settings import VpnSettings
from gateway.vpn.workers import TunnelScopes
from gateway.workers.contract import Nudge
from policy.document import DEFAULT_POLICY_FILE
from tests.gateway.vpn.agents import agent_session
from tests.support.workers import one_pass
from tests.vpn.keys import key_pair

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
LEASES = 12


def _import(engine: Engine, agents_scope: list[str]) -> None:
    policy = yaml.safe_load(DEFAULT_POLICY_FILE.read_text(encoding="utf-8"))
    policy["groups"]["SOHO-Agents"]["network_scope"] = agents_scope
    with session_scope(engine) as db:
        import_policy(db, yaml.safe_dump(policy), actor="secadmin", source="test", now=NOW)


def test_a_policy_change_seen_by_two_nodes_at_once_rescopes_and_audits_each_lease_once(pg_engine: Engine) -> None:
    _import(pg_engine, ["10.77.0.1/32 443/tcp", "172.30.0.0/24 8081/tcp"])
    with session_scope(pg_engine) as db:
        for number in range(LEASES):
            session, _ = agent_session(db, f"agent{number}", NOW, wireguard_key=key_pair()[1])
            lease_for_session(db, session, NOW, VpnSettings())
    _import(pg_engine, ["10.77.0.1/32 443/tcp"])
    both_read = threading.Barrier(2, timeout=10)

    def before_locking(state: Any) -> None:  # each pass has read every lease unlocked by the time it locks some
        if state.is_select and state.statement._for_update_arg is not None:
            both_read.wait()

    event.listen(Session, "do_orm_execute", before_locking)
    try:
        with ThreadPoolExecutor(max_workers=2) as nodes:
            passes = [
                nodes.submit(one_pass, pg_engine, TunnelScopes(lambda: NOW), [Nudge(POLICY_CHANGED, 2)])
                for _ in range(2)
            ]
            for done in passes:
                done.result(timeout=30)  # raises what a pass raised
    finally:
        event.remove(Session, "do_orm_execute", before_locking)
    with session_scope(pg_engine) as db:
        scopes = {lease.scope for lease in db.exec(select(TunnelLease))}
        audited = db.exec(select(AuditEvent).where(AuditEvent.outcome == "rescoped")).all()
    assert scopes == {json.dumps([["10.77.0.1/32", "tcp", 443]])}
    sessions = [json.loads(row.detail)["session"] for row in audited]
    assert len(sessions) == len(set(sessions)) == LEASES  # every lease audited, none twice
