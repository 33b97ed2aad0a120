"""An admin's "end now" on node A ends the tunnel node B terminates within one second: A's commit notifies B over
PostgreSQL, and B's VPN controller, woken by that nudge alone (its own interval is a minute), removes the peer from
its real wireguard-go and the agent's address from its nftables scope. B installs only the tunnels it owns."""

import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from gateway.db import session_scope
from gateway.events import publish
from gateway.nodes.listener import NudgeListener
from gateway.vpn.backend import PeerChanges
from gateway.vpn.controller import VpnController
from gateway.vpn.leases import lease_for_session
from gateway.vpn.settings import VpnSettings
from gateway.vpn.workers import vpn_workers
from gateway.workers.runner import WorkerRunner
from tests.gateway.nodes.cluster import REPO
from tests.gateway.vpn.agents import agent_session
from tests.support.components import require_programs
from tests.vpn.conftest import VPN_PACKAGES, VPN_PROGRAMS
from tests.vpn.keys import key_pair
from tests.vpn.netns import NetnsLab

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

END_ON_NODE_A = """
import sys, time
from datetime import UTC, datetime
from gateway.db import make_engine, session_scope
from gateway.sessions.models import EndReason
from gateway.sessions.service import end_session, get_session
with session_scope(make_engine(sys.argv[1])) as db:
    session = get_session(db, sys.argv[2])
    end_session(db, session, EndReason.ADMIN, actor="admin@corp.example", now=datetime.now(UTC))
print(time.monotonic())
"""


def _scope_text(lab: NetnsLab, ns: str) -> str:
    return lab.run(ns, "nft", "list", "ruleset").stdout


def test_end_now_on_node_a_removes_node_bs_peer_and_scope_within_one_second(
    pg_url: str, pg_engine: Engine, tmp_path: Path
) -> None:
    require_programs(*VPN_PROGRAMS, install=VPN_PACKAGES)
    now = datetime.now(UTC)
    keys = {login: key_pair()[1] for login in ("li.na", "zhao.lei")}
    with session_scope(pg_engine) as db:
        sessions = {}
        for login, node in (("li.na", "a"), ("zhao.lei", "b")):
            session, _ = agent_session(db, login, now, wireguard_key=keys[login])
            session.node = node
            sessions[login] = session.id
            lease = lease_for_session(db, session, now, VpnSettings(), node)
            assert lease is not None
    with NetnsLab() as lab:
        gateway_b = lab.add("gwb")
        settings = VpnSettings(
            enabled=True,
            interface=lab.name("wgb"),
            netns=gateway_b,
            endpoint="198.51.100.2:51820",
            reconcile_seconds=60,
            private_key_file=tmp_path / "wg.key",
        )
        node_b = VpnController(pg_engine, settings, tmp_path, node="b")
        runner = WorkerRunner(vpn_workers(node_b), pg_engine)
        listener = NudgeListener(pg_url, publish)
        removed_at: list[float] = []
        try:
            node_b.start()
            assert node_b.off_reason is None, node_b.off_reason
            listener.start()
            backend = node_b.backend
            assert backend is not None
            change = backend.change

            def timed_change(interface: str, changes: PeerChanges) -> None:
                """The moment wireguard-go confirmed the removal (its UAPI ``set`` answered errno=0)."""
                change(interface, changes)
                if keys["zhao.lei"] in changes.to_remove:
                    removed_at.append(time.monotonic())

            backend.change = timed_change  # type: ignore[method-assign]
            runner.start()  # node b's VPN workers, as its app runs them; the first pass installs its peers
            deadline = time.monotonic() + 10
            while set(backend.peers(settings.interface)) != {keys["zhao.lei"]} and time.monotonic() < deadline:
                time.sleep(0.02)
            assert set(backend.peers(settings.interface)) == {keys["zhao.lei"]}  # not a's li.na
            scope = _scope_text(lab, gateway_b)
            assert "10.77.0.3" in scope and "10.77.0.2" not in scope  # zhao.lei's address, not li.na's
            deadline = time.monotonic() + 10
            while not listener.status.connected and time.monotonic() < deadline:
                time.sleep(0.02)

            ended = subprocess.run(
                [sys.executable, "-c", END_ON_NODE_A, pg_url, sessions["zhao.lei"]],
                cwd=REPO,
                capture_output=True,
                text=True,
                check=True,
            )
            committed_at = float(ended.stdout.strip().splitlines()[-1])
            while not removed_at and time.monotonic() < deadline + 5:
                time.sleep(0.01)
            assert removed_at, "node b never removed the peer"
            assert removed_at[0] - committed_at < 1.0, removed_at[0] - committed_at
            assert keys["zhao.lei"] not in backend.peers(settings.interface)
            assert "10.77.0.3" not in _scope_text(lab, gateway_b)
        finally:
            listener.stop()
            runner.stop()
            node_b.stop()
