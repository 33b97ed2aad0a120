"""A survivor declaring a node dead, and the agent who was on it signing in again on a survivor and downloading
their config at that moment, never deadlock on PostgreSQL (nor fail on SQLite), and the agent's address stays theirs.

Every audit row holds the chain's head until its transaction commits, and the download holds the agent's address row
(`ipam.assign`) while it waits for that head. The dead node's sessions were ended, audited, before the retirement of
their leases took their persons' rows: the two waited for each other until PostgreSQL ended one. The survivor locks
those rows (`ipam.lock_addresses`) before its first audit row."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from gateway.audit.service import verify_chain
from gateway.db import is_postgres, session_scope
from gateway.nodes import service
from gateway.sessions.models import HomeSession
from gateway.vpn.leases import lease_for_session
from gateway.vpn.models import AddressAssignment, LeaseState, TunnelLease
from gateway.vpn.settings import VpnSettings
from tests.gateway.vpn.agents import agent_session
from tests.support.beside import run_beside
from tests.vpn.keys import key_pair

NOW = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
DEAD_AFTER = timedelta(seconds=15)
SETTINGS = VpnSettings()


AGENTS = {"n1": "ann", "n3": "bob"}  # the node each agent's tunnel was on


@pytest.mark.parametrize("dead", [("n1",), ("n1", "n3")], ids=["one dead node", "two dead nodes"])
def test_a_dead_nodes_sessions_end_beside_an_agents_new_lease_on_a_survivor(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, dead: tuple[str, ...]
) -> None:
    """Each agent's tunnel was on a node that went silent; they signed in again on n2 (on SQLite, one node: n2 has
    no row), and a config download writes an agent's new lease once n2 has ended the dead nodes' sessions, after
    their audit row (one append for all, `sessions.service.end_sessions`): with one dead node, that agent's; with
    two, the agent of the node n2 comes to last."""
    old: dict[str, str] = {}
    new: dict[str, str] = {}
    with session_scope(engine) as db:
        for n, node in enumerate(dead):
            joined = NOW - timedelta(minutes=10 - 5 * n)  # SQLite: each the only one beating when it joined
            service.join(db, node, joined, dead_after=DEAD_AFTER, shared_database=is_postgres(engine))
            login = AGENTS[node]
            session, _ = agent_session(db, login, NOW - timedelta(hours=1), wireguard_key=key_pair()[1], node=node)
            assert lease_for_session(db, session, NOW - timedelta(hours=1), SETTINGS, node=node) is not None
            old[login] = session.id
            new[login] = agent_session(db, login, NOW, wireguard_key=key_pair()[1], node="n2")[0].id

    def download(login: str) -> None:
        with session_scope(engine) as db:
            assert lease_for_session(db, db.get_one(HomeSession, new[login]), NOW, SETTINGS, node="n2") is not None

    failures: list[BaseException] = []
    beside: list[Any] = []
    end_sessions = service.end_sessions

    def end_with_a_download_beside(db: Session, *args: Any, **kwargs: Any) -> int:
        ended = end_sessions(db, *args, **kwargs)  # its audit row holds the chain's head
        if not beside:
            beside.append(run_beside(engine, lambda: download(AGENTS[dead[-1]]), failures))
        return ended

    monkeypatch.setattr(service, "end_sessions", end_with_a_download_beside)
    with session_scope(engine) as db:
        assert sorted(service.declare_dead_nodes(db, "n2", NOW, DEAD_AFTER)) == list(dead)
    beside[0].join(30)
    assert not beside[0].is_alive()
    assert failures == []

    with Session(engine) as db:
        leases = {lease.session_id: lease for lease in db.exec(select(TunnelLease)).all()}
        addresses = {row.person_id: row for row in db.exec(select(AddressAssignment)).all()}
        assert verify_chain(db).first_bad_seq is None
    assert all(leases[session_id].state is LeaseState.REMOVED for session_id in old.values())
    written = [login for login in new if new[login] in leases]
    assert len(written) == 1
    for login in written:
        address = addresses[f"test:{login}"]
        lease = leases[new[login]]
        assert (lease.state, lease.node, lease.ipv4) == (LeaseState.DESIRED, "n2", address.ipv4)
        assert leases[old[login]].ipv4 == address.ipv4
        assert address.released_at is None, "released under the agent's new lease"
