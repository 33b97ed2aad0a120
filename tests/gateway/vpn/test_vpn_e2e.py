"""End to end: people sign in at the portal from their homes, and their sessions drive real wireguard-go tunnels
and the nft scope, in namespaces (run as root)."""

import os
import signal
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from certs.revocation import HttpRevocationChecker
from gateway.db import session_scope
from gateway.pki.service import Actor, revoke
from gateway.sessions.models import EndReason, SessionState
from gateway.sessions.revalidation import revalidate
from gateway.sessions.service import get_session
from gateway.vpn import nft
from gateway.vpn.health import tunnel_health
from gateway.vpn.workers import HealthSampler
from tests.gateway.vpn.world import PORTAL, TRUST, VpnWorld, running_world
from tests.support.components import require_programs
from tests.support.workers import one_pass
from tests.vpn.conftest import VPN_PACKAGES, VPN_PROGRAMS
from tests.vpn.keys import key_pair
from tests.vpn.netns import NetnsLab

pytestmark = pytest.mark.e2e

PROBER = (
    "import socket, sys, time\n"
    "print('ready', flush=True)\n"
    "while True:\n"
    "    began = time.monotonic()\n"
    "    try:\n"
    "        socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=0.2).close()\n"
    "    except OSError:\n"
    "        print(began, time.monotonic(), flush=True)\n"
    "        break\n"
    "    time.sleep(0.005)\n"
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[VpnWorld]:
    require_programs(*VPN_PROGRAMS, install=VPN_PACKAGES)
    with NetnsLab() as lab, running_world(lab, tmp_path_factory.mktemp("vpn-e2e"), sqlite_template) as built:
        yield built


@pytest.fixture
def fresh(world: VpnWorld) -> VpnWorld:
    world.end_all()
    return world


def test_no_packet_passes_before_the_second_factor_and_the_portal_answers_after(fresh: VpnWorld) -> None:
    home = fresh.homes["home1"]
    pending = fresh.sign_in(home, second_factor=False)
    assert pending.state is SessionState.PENDING_SECOND_FACTOR
    fresh.controller.run_once()  # a whole pass has seen the pending session
    assert fresh.peers() == set()
    assert not fresh.reaches(home.ns, PORTAL)
    activated = time.monotonic()
    fresh.second_factor(home)
    assert fresh.wait(lambda: fresh.peers() == {home.public_key}, 3)
    print(f"second factor → peer installed: {(time.monotonic() - activated) * 1000:.0f} ms")
    assert fresh.reaches_within(home.ns, PORTAL, 10)  # the client retries a refused handshake every 5 s
    url = f"https://{PORTAL[0]}:{PORTAL[1]}/healthz"
    page = fresh.lab.run(home.ns, "curl", "-sS", "-m", "10", "--cacert", str(fresh.ca_file), url).stdout
    assert '"status":"ok"' in page


def test_a_password_alone_leaves_the_tunnel_and_the_second_factor_replaces_the_session(fresh: VpnWorld) -> None:
    home = fresh.homes["home1"]
    first = fresh.sign_in(home)
    assert fresh.reaches_within(home.ns, PORTAL, 10)
    second = fresh.sign_in(home, second_factor=False)
    fresh.controller.run_once()
    states = {session.id: session.state for session in fresh.sessions_of(home)}
    assert (states[first.id], states[second.id]) == (SessionState.ACTIVE, SessionState.PENDING_SECOND_FACTOR)
    assert fresh.peers() == {home.public_key}
    fresh.second_factor(home)
    with session_scope(fresh.engine) as db:
        replaced = get_session(db, first.id)
        assert replaced is not None and replaced.end_reason is EndReason.REPLACED
    assert fresh.session_of(home).id == second.id
    assert fresh.wait(lambda: fresh.peers() == {home.public_key}, 3)
    assert fresh.reaches_within(home.ns, PORTAL, 10)


def test_the_trust_host_and_the_other_seat_are_out_of_reach(fresh: VpnWorld) -> None:
    home1, home2 = fresh.homes["home1"], fresh.homes["home2"]
    fresh.sign_in(home1)
    fresh.sign_in(home2)
    fresh.lab.spawn(home2.ns, sys.executable, "-m", "http.server", "8083", "--bind", home2.address)
    assert fresh.reaches_within(home2.ns, PORTAL, 10)
    assert fresh.reaches_within(home1.ns, PORTAL, 10)
    assert fresh.reaches(home2.ns, (home2.address, 8083))  # the seat's server runs
    assert fresh.blocked(home1.ns, TRUST)
    assert fresh.blocked(home1.ns, (home2.address, 8083))
    assert not fresh.blocked(home1.ns, PORTAL)  # the check itself can say no
    assert fresh.reaches(fresh.trust, TRUST) and fresh.reaches(fresh.gw, TRUST)  # the trust host itself is up


def test_revoking_the_certificate_removes_the_peer_after_revalidation(
    fresh: VpnWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    home1, home2 = fresh.homes["home1"], fresh.homes["home2"]
    session = fresh.sign_in(home1)
    fresh.sign_in(home2)
    assert fresh.reaches_within(home1.ns, PORTAL, 10)
    prober = fresh.lab.spawn(home1.ns, sys.executable, "-c", PROBER, *PORTAL[:1], str(PORTAL[1]))
    assert prober.stdout is not None and prober.stdout.readline().strip() == b"ready"
    revoked_at = time.monotonic()
    now = datetime.now(UTC)
    with session_scope(fresh.engine) as db:
        revoke(db, fresh.authority, session.cert_serial or "", "keyCompromise", actor=Actor("admin"), now=now,
               crl_validity=timedelta(hours=1))  # fmt: skip
    report = revalidate(fresh.engine, fresh.directory, fresh.authority, HttpRevocationChecker(), now)
    ended_at = time.monotonic()
    assert (report.checked, report.ended) == (2, 1)
    assert fresh.wait(lambda: home1.public_key not in fresh.peers(), 2)
    removed_at = time.monotonic()
    began, _ = (float(value) for value in prober.stdout.readline().split())
    with session_scope(fresh.engine) as db:
        ended = get_session(db, session.id)
        assert ended is not None and ended.end_reason is EndReason.CERTIFICATE_REVOKED
    assert fresh.peers() == {home2.public_key}
    with capsys.disabled():
        print(
            f"\nrevoke → session ended {(ended_at - revoked_at) * 1000:.0f} ms, "
            f"→ peer gone ≤{(removed_at - revoked_at) * 1000:.0f} ms, "
            f"→ first failed probe began {(began - revoked_at) * 1000:.0f} ms"
        )
    # The promise is under one second (bench/bench_vpn_reconcile.py measures it); twice that here leaves room for
    # a loaded machine while still telling the nudge from the safety-net pass.
    assert began - revoked_at < 2.0


def test_signing_out_at_the_portal_removes_the_peer(fresh: VpnWorld) -> None:
    home = fresh.homes["home2"]
    session = fresh.sign_in(home)
    assert fresh.reaches_within(home.ns, PORTAL, 10)
    fresh.sign_out(home)
    with session_scope(fresh.engine) as db:
        ended = get_session(db, session.id)
        assert ended is not None and ended.end_reason is EndReason.LOGOUT
    assert fresh.wait(lambda: fresh.peers() == set(), 2)
    assert not fresh.reaches(home.ns, PORTAL)


def test_killed_wireguard_go_and_a_restarted_controller_restore_exactly_the_authorised_peers(fresh: VpnWorld) -> None:
    home1, home2 = fresh.homes["home1"], fresh.homes["home2"]
    fresh.sign_in(home1)
    assert fresh.wait(lambda: fresh.peers() == {home1.public_key}, 3)
    daemon = fresh.controller.backend.daemons[fresh.settings.interface]  # type: ignore[union-attr]
    os.kill(daemon.pid or 0, signal.SIGKILL)
    assert fresh.wait(lambda: daemon.restarts == 1, 10)
    assert fresh.wait(lambda: fresh.peers() == {home1.public_key}, 5)
    assert fresh.reaches_within(home1.ns, PORTAL, 15)
    assert not fresh.reaches(home2.ns, PORTAL)
    fresh.new_controller()
    assert fresh.peers() == {home1.public_key}  # start() reconciles before it returns
    assert fresh.reaches_within(home1.ns, PORTAL, 15)
    assert not fresh.reaches(home2.ns, PORTAL)


def test_a_peer_added_by_hand_is_removed_by_the_next_pass(fresh: VpnWorld) -> None:
    fresh.sign_in(fresh.homes["home1"])
    intruder = key_pair()[1]
    fresh.lab.run(fresh.gw, "wg", "set", fresh.settings.interface, "peer", intruder, "allowed-ips", "10.77.9.9/32")
    assert intruder in fresh.peers()
    # The pass that removes the intruder may have read the desired peers just before the sign-in committed; the
    # next one (nudged by the sign-in) adds home1. What must hold: the intruder goes, and only home1 stays.
    authorised = {fresh.homes["home1"].public_key}
    assert fresh.wait(lambda: fresh.peers() == authorised, 3 * fresh.settings.reconcile_seconds), fresh.peers()


def test_a_scope_table_deleted_by_hand_is_loaded_again_by_the_next_pass(fresh: VpnWorld) -> None:
    home = fresh.homes["home1"]
    fresh.sign_in(home)
    assert fresh.reaches_within(home.ns, PORTAL, 10)
    fresh.lab.run(fresh.gw, "nft", "delete", "table", "inet", "sohogw")
    assert fresh.wait(lambda: nft.loaded(fresh.gw), 3 * fresh.settings.reconcile_seconds)
    assert fresh.blocked(home.ns, TRUST)
    assert fresh.reaches(home.ns, PORTAL)


def test_an_unchanged_reconcile_keeps_handshake_and_counters_and_health_is_sampled(fresh: VpnWorld) -> None:
    home = fresh.homes["home1"]
    session = fresh.sign_in(home)
    assert fresh.reaches_within(home.ns, PORTAL, 10)
    backend = fresh.controller.backend
    assert backend is not None
    before = backend.peers(fresh.settings.interface)[home.public_key]
    assert before.latest_handshake is not None and before.rx_bytes > 0
    result = fresh.controller.run_once()
    after = backend.peers(fresh.settings.interface)[home.public_key]
    assert not result.changes and not result.scope_loaded
    assert after.latest_handshake == before.latest_handshake and after.rx_bytes >= before.rx_bytes
    one_pass(fresh.engine, HealthSampler(fresh.controller))
    with session_scope(fresh.engine) as db:
        health = tunnel_health(db, session.id)
    assert health.latest_handshake_at == after.latest_handshake
    assert health.endpoint is not None and health.endpoint.startswith("192.168.101.2:")
    assert health.rx_bytes > 0 and health.tx_bytes > 0
