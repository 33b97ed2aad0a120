"""End to end: a live tunnel follows the policy in force and the person's groups, without a new sign-in.

A security admin narrows a group's network scope, or the directory takes a person out of a group that granted a
destination while they keep their role: a home already connected loses that destination within seconds (the packet
is dropped by the gateway's scope), and what is still in scope keeps working, on the same session."""

import select
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from certs.revocation import HttpRevocationChecker
from gateway.db import session_scope
from gateway.policies.service import import_policy
from gateway.sessions.models import SessionState
from gateway.sessions.revalidation import revalidate
from gateway.sessions.service import get_session
from gateway.vpn.workers import TunnelScopes
from tests.gateway.vpn.world import DEFAULT_POLICY, PORTAL, TRUST, Home, VpnWorld, running_world
from tests.support.components import require_programs
from tests.support.workers import one_pass
from tests.vpn.conftest import VPN_PACKAGES, VPN_PROGRAMS
from tests.vpn.netns import ECHO_SERVER, NetnsLab

pytestmark = pytest.mark.e2e
PORTAL_LINE = f"{PORTAL[0]}/32 {PORTAL[1]}/tcp"
TRUST_LINE = f"{TRUST[0]}/32 {TRUST[1]}/tcp"
TRUST_READERS = "Trust-Readers"
ECHO_CUT, ECHO_KEPT = 8082, 8083
CUT_LINE, KEPT_LINE = f"{TRUST[0]}/32 {ECHO_CUT}/tcp", f"{TRUST[0]}/32 {ECHO_KEPT}/tcp"
HELD_CONNECTION = (
    "import socket, sys, time\n"
    "peer = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)\n"
    "peer.settimeout(0.5)\n"
    "print('ready', flush=True)\n"
    "while True:\n"
    "    try:\n"
    "        peer.sendall(b'x')\n"
    "        if peer.recv(1) != b'x':\n"
    "            raise OSError('closed')\n"
    "    except OSError:\n"
    "        print(time.monotonic(), flush=True)\n"
    "        break\n"
    "    time.sleep(0.02)\n"
)
"""One TCP connection held open from a home, echoing a byte every 20 ms; prints when the first exchange fails."""
NARROWED_WITHIN = 3.0
"""Seconds from the commit to the dropped packet: a nudge and two short passes, on a machine shared with others."""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[VpnWorld]:
    require_programs(*VPN_PROGRAMS, install=VPN_PACKAGES)
    with NetnsLab() as lab, running_world(lab, tmp_path_factory.mktemp("vpn-scope"), sqlite_template) as built:
        yield built


@pytest.fixture(scope="module")
def echoes(world: VpnWorld) -> None:
    """The trust host echoes on ``ECHO_CUT`` and ``ECHO_KEPT`` for the module's tests."""
    for port in (ECHO_CUT, ECHO_KEPT):
        world.lab.spawn(world.trust, sys.executable, "-c", ECHO_SERVER, TRUST[0], str(port))


@pytest.fixture
def fresh(world: VpnWorld) -> Iterator[VpnWorld]:
    world.end_all()
    try:
        yield world
    finally:
        _import(world, _policy())  # the world's own policy again, for the next test


def _policy(agents: list[str] | None = None, trust_readers: list[str] | None = None) -> dict[str, Any]:
    """The world's policy (the default, agents asked for a second factor), with the agents' network scope and an
    optional role-less group that grants destinations only."""
    policy = yaml.safe_load(DEFAULT_POLICY.read_text())
    policy["roles"]["agent"] = {"require_totp": True}
    if agents is not None:
        policy["groups"]["SOHO-Agents"]["network_scope"] = agents
    if trust_readers is not None:
        policy["groups"][TRUST_READERS] = {"network_scope": trust_readers}
    return policy


def _import(world: VpnWorld, policy: dict[str, Any]) -> None:
    with session_scope(world.engine) as db:
        import_policy(db, yaml.safe_dump(policy), actor="secadmin", source="test", now=world.clock())


def _cut_off(world: VpnWorld, ns: str, since: float) -> float:
    """Seconds from ``since`` until a connection to the trust host fails; the test fails when it never does."""
    assert world.wait(lambda: not world.reaches(ns, TRUST, 0.5), NARROWED_WITHIN), "the trust host stayed reachable"
    return time.monotonic() - since


def _line_within(process: subprocess.Popen[bytes], seconds: float) -> bytes | None:
    assert process.stdout is not None
    readable, _, _ = select.select([process.stdout], [], [], seconds)
    return process.stdout.readline().strip() if readable else None


def _still_active(world: VpnWorld, session_id: str) -> bool:
    with session_scope(world.engine) as db:
        session = get_session(db, session_id)
        return session is not None and session.state is SessionState.ACTIVE


def test_a_narrowed_policy_cuts_a_live_tunnel_off_the_destination_and_keeps_the_rest(fresh: VpnWorld) -> None:
    _import(fresh, _policy(agents=[PORTAL_LINE, TRUST_LINE]))
    home = fresh.homes["home1"]
    session = fresh.sign_in(home)
    assert fresh.reaches_within(home.ns, TRUST, 10) and fresh.reaches(home.ns, PORTAL)
    narrowed = time.monotonic()
    _import(fresh, _policy(agents=[PORTAL_LINE]))
    print(f"policy narrowed → trust host unreachable: {_cut_off(fresh, home.ns, narrowed) * 1000:.0f} ms")
    assert fresh.blocked(home.ns, TRUST)  # the scope's drop counted it: refused, not merely slow
    assert fresh.reaches(home.ns, PORTAL)
    assert _still_active(fresh, session.id) and fresh.peers() == {home.public_key}
    _import(fresh, _policy(agents=[PORTAL_LINE, TRUST_LINE]))  # widened again: applied just the same
    assert fresh.reaches_within(home.ns, TRUST, NARROWED_WITHIN)


def test_a_group_taken_away_in_the_directory_cuts_its_destination_while_the_role_stays(fresh: VpnWorld) -> None:
    _import(fresh, _policy(trust_readers=[TRUST_LINE]))
    home = fresh.homes["home1"]
    fresh.directory.add_to_group(home.login, TRUST_READERS)
    try:
        session = fresh.sign_in(home)
        assert fresh.reaches_within(home.ns, TRUST, 10)
        fresh.directory.remove_from_group(home.login, TRUST_READERS)
        removed = time.monotonic()
        report = revalidate(fresh.engine, fresh.directory, fresh.authority, HttpRevocationChecker(), datetime.now(UTC))
        assert report.ended == 0  # still an agent: the session goes on
        print(f"group removed → trust host unreachable: {_cut_off(fresh, home.ns, removed) * 1000:.0f} ms")
        assert fresh.blocked(home.ns, TRUST)
        assert fresh.reaches(home.ns, PORTAL)
        assert _still_active(fresh, session.id) and fresh.peers() == {home.public_key}
    finally:
        fresh.directory.remove_from_group(home.login, TRUST_READERS)


def _held_connections(world: VpnWorld, home: Home) -> dict[int, subprocess.Popen[bytes]]:
    """The home signed in with both echo ports in its scope, and a connection held open to each."""
    _import(world, _policy(agents=[PORTAL_LINE, CUT_LINE, KEPT_LINE]))
    world.sign_in(home)
    assert world.reaches_within(home.ns, (TRUST[0], ECHO_CUT), 10)
    held = {
        port: world.lab.spawn(home.ns, sys.executable, "-c", HELD_CONNECTION, TRUST[0], str(port))
        for port in (ECHO_CUT, ECHO_KEPT)
    }
    assert all(_line_within(process, 5) == b"ready" for process in held.values())
    return held


@pytest.mark.usefixtures("echoes")
def test_a_connection_held_open_to_a_destination_taken_away_is_cut_and_one_still_allowed_is_kept(
    fresh: VpnWorld,
) -> None:
    held = _held_connections(fresh, fresh.homes["home1"])
    narrowed = time.monotonic()
    _import(fresh, _policy(agents=[PORTAL_LINE, KEPT_LINE]))
    failed = _line_within(held[ECHO_CUT], NARROWED_WITHIN)
    assert failed is not None, "the connection to the destination taken away stayed open"
    print(f"policy narrowed → open connection cut: {(float(failed) - narrowed) * 1000:.0f} ms")
    assert _line_within(held[ECHO_KEPT], 1.0) is None  # the one still allowed kept echoing
    assert held[ECHO_KEPT].poll() is None


@pytest.mark.usefixtures("echoes")
def test_the_first_pass_of_a_life_cuts_a_connection_its_scope_lost_while_the_gateway_was_down(
    fresh: VpnWorld,
) -> None:
    """Conntrack outlives the gateway's process: a scope narrowed meanwhile (a policy import while it restarted) is
    first applied by a pass that loads the table whole, and that pass must cut the open connections it refuses."""
    held = _held_connections(fresh, fresh.homes["home1"])
    controller = fresh.controller
    # No pass applies until the controller knows nothing (as after a restart): the rescoped lease's nudged pass
    # would otherwise cut the connection as a narrowed pass, which is not what this test is about.
    with controller._applying:
        _import(fresh, _policy(agents=[PORTAL_LINE, KEPT_LINE]))
        one_pass(fresh.engine, TunnelScopes(fresh.clock))  # the leases rescoped, as the vpn.scope worker does
        controller.forget()
    restarted = time.monotonic()
    controller.run_once()  # the first pass of the new life, unless the worker's retried pass came first
    failed = _line_within(held[ECHO_CUT], NARROWED_WITHIN)
    assert failed is not None, "the connection to the destination taken away stayed open"
    print(f"first pass of a life → open connection cut: {(float(failed) - restarted) * 1000:.0f} ms")
    assert _line_within(held[ECHO_KEPT], 1.0) is None  # the one still allowed kept echoing
    assert held[ECHO_KEPT].poll() is None
