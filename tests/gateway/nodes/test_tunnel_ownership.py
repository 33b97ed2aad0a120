"""Each node installs only the tunnels it owns: the lease names the node that wrote it and that node's endpoint,
and a lease from before nodes were named is served by every node."""

from datetime import UTC, datetime

from sqlmodel import Session

from gateway.vpn.client_config import client_config
from gateway.vpn.leases import lease_missing_sessions
from gateway.vpn.reconcile import desired_peers
from gateway.vpn.settings import VpnSettings
from tests.gateway.vpn.agents import agent_session
from tests.vpn.keys import key_pair

NOW = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
NODE_A = VpnSettings(endpoint="gw-a.example.net:51820")
NODE_B = VpnSettings(endpoint="gw-b.example.net:51820")


def test_each_node_leases_and_installs_only_the_tunnels_of_the_sessions_signed_in_on_it(db: Session) -> None:
    sessions = {}
    for login, node in (("li.na", "a"), ("wang.fang", "b"), ("zhao.lei", "b")):
        session, _ = agent_session(db, login, NOW, wireguard_key=key_pair()[1])
        session.node = node
        db.add(session)
        sessions[login] = session
    db.flush()
    assert lease_missing_sessions(db, NOW, NODE_A, node="a") == 1
    assert lease_missing_sessions(db, NOW, NODE_B, node="b") == 2
    assert lease_missing_sessions(db, NOW, NODE_A, node="a") == 0  # b's sessions are not a's to lease
    peers = {node: {p.session_id for p in desired_peers(db, NOW, node=node).peers.values()} for node in ("a", "b")}
    assert peers == {"a": {sessions["li.na"].id}, "b": {sessions["wang.fang"].id, sessions["zhao.lei"].id}}
    assert {p.session_id for p in desired_peers(db, NOW).peers.values()} == {
        s.id for s in sessions.values()
    }  # no node: all
    # whichever node renders the config, it names the owner's endpoint
    config = client_config(db, sessions["li.na"], NODE_B, "GATEWAYKEY=", NOW, "b")
    assert "Endpoint = gw-a.example.net:51820" in config


def test_a_lease_written_before_nodes_were_named_is_served_by_every_node(db: Session) -> None:
    session, _ = agent_session(db, "li.na", NOW, wireguard_key=key_pair()[1])
    assert lease_missing_sessions(db, NOW, NODE_A) == 1  # a node that does not name itself writes node None
    assert [p.session_id for p in desired_peers(db, NOW, node="a").peers.values()] == [session.id]
    assert [p.session_id for p in desired_peers(db, NOW, node="b").peers.values()] == [session.id]
