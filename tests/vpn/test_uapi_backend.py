"""The UAPI backend against a real wireguard-go in a throw-away namespace (no tunnel traffic needed)."""

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.vpn.backend import PeerSpec, WireGuardError
from gateway.vpn.uapi import UapiBackend
from gateway.vpn.uapi_wire import exchange, peer_lines, set_request, socket_path
from gateway.vpn.wireguard_go import socket_server_pid
from tests.vpn.keys import key_pair
from tests.vpn.netns import NetnsLab


@pytest.fixture
def gateway(lab: NetnsLab) -> Iterator[tuple[UapiBackend, str, str]]:
    ns = lab.add("gw")
    backend = UapiBackend(netns=ns)
    name = lab.name("wg")
    try:
        backend.ensure_interface(name, key_pair()[0], 51820, ["10.77.0.1/16", "fd77::1/64"])
        yield backend, name, ns
    finally:
        backend.stop()


def specs(count: int, first: int = 2) -> dict[str, PeerSpec]:
    peers = [PeerSpec.of(key_pair()[1], [f"10.77.0.{n}/32"]) for n in range(first, first + count)]
    return {p.public_key: p for p in peers}


def test_ensure_interface_starts_wireguard_go_with_key_port_and_addresses(
    gateway: tuple[UapiBackend, str, str], lab: NetnsLab
) -> None:
    _backend, name, ns = gateway
    shown = lab.run(ns, "wg", "show", name, "listen-port").stdout.strip()
    assert shown == "51820"
    addresses = lab.run(ns, "ip", "-br", "addr", "show", name).stdout
    assert "10.77.0.1/16" in addresses and "fd77::1/64" in addresses
    flags = lab.run(ns, "ip", "-o", "link", "show", name).stdout
    assert ",UP" in flags


def test_apply_installs_exactly_the_desired_peers(gateway: tuple[UapiBackend, str, str], lab: NetnsLab) -> None:
    backend, name, ns = gateway
    desired = specs(3)
    changes = backend.apply(name, desired)
    assert len(changes.to_set) == 3 and not changes.to_remove
    live = backend.peers(name)
    assert {k: p.allowed_ips for k, p in live.items()} == {k: p.allowed_ips for k, p in desired.items()}
    assert set(lab.run(ns, "wg", "show", name, "peers").stdout.split()) == set(desired)


def test_a_request_of_thousands_of_peers_sent_in_parts_is_applied_whole(gateway: tuple[UapiBackend, str, str]) -> None:
    """1,500 peers are some 9,000 lines: the request goes out in several parts, one transaction still."""
    backend, name, _ = gateway
    peers = [PeerSpec.of(key_pair()[1], [f"10.77.{n // 250}.{n % 250 + 2}/32"]) for n in range(1500)]
    assert len(list(set_request(line for peer in peers for line in peer_lines(peer)))) > 3
    first = {peer.public_key: peer for peer in peers[:1000]}
    assert len(backend.apply(name, first).to_set) == 1000
    second = {peer.public_key: peer for peer in peers[500:]}
    changes = backend.apply(name, second)
    assert len(changes.to_set) == 500 and set(changes.to_remove) == {peer.public_key for peer in peers[:500]}
    assert backend.peer_configs(name) == second


def test_wireguard_go_lists_what_was_set_as_the_configuration_read_expects_it(
    gateway: tuple[UapiBackend, str, str], lab: NetnsLab
) -> None:
    """The safety net's quick answer relies on wireguard-go's own order (each peer's keepalive, then its allowed IPs
    as they were added, last): this daemon's answer must give back the expected mapping itself, and a change made
    beside the backend must not."""
    backend, name, ns = gateway
    peers = [PeerSpec.of(key_pair()[1], [f"10.77.0.{n}/32", f"fd77::{n:x}/128"], 25 if n % 2 else None) for n in (2, 3)]
    installed = {peer.public_key: peer for peer in peers}
    backend.apply(name, installed)
    assert backend.peer_configs(name, installed) is installed
    lab.run(ns, "wg", "set", name, "peer", peers[0].public_key, "allowed-ips", "10.77.0.2/32,fd77::2/128,10.77.9.0/24")
    assert backend.peer_configs(name, installed)[peers[0].public_key].allowed_ips == {
        "10.77.0.2/32",
        "fd77::2/128",
        "10.77.9.0/24",
    }


def test_set_peer_replaces_allowed_ips_instead_of_appending(gateway: tuple[UapiBackend, str, str]) -> None:
    backend, name, _ = gateway
    key = key_pair()[1]
    backend.set_peer(name, PeerSpec.of(key, ["10.77.0.2/32"]))
    backend.set_peer(name, PeerSpec.of(key, ["10.77.0.7/32", "fd77::7/128"]))
    assert backend.peers(name)[key].allowed_ips == {"10.77.0.7/32", "fd77::7/128"}


def test_apply_touches_only_what_differs(gateway: tuple[UapiBackend, str, str]) -> None:
    backend, name, _ = gateway
    desired = specs(4)
    backend.apply(name, desired)
    keys = list(desired)
    changed = PeerSpec.of(keys[0], ["10.77.0.50/32"])
    newer = {**desired, keys[0]: changed}
    del newer[keys[1]]
    changes = backend.apply(name, newer)
    assert changes.to_set == [changed] and changes.to_remove == [keys[1]]
    assert not backend.apply(name, newer)


def test_an_address_moves_between_peers_in_one_apply(gateway: tuple[UapiBackend, str, str]) -> None:
    backend, name, _ = gateway
    old = specs(1, first=9)
    backend.apply(name, old)
    new = specs(1, first=9)  # another key, same address: the old peer must go first
    backend.apply(name, new)
    live = backend.peers(name)
    assert set(live) == set(new) and next(iter(live.values())).allowed_ips == {"10.77.0.9/32"}


def test_remove_peer_removes_only_that_peer(gateway: tuple[UapiBackend, str, str]) -> None:
    backend, name, _ = gateway
    desired = specs(2)
    backend.apply(name, desired)
    gone, kept = list(desired)
    backend.remove_peer(name, gone)
    assert set(backend.peers(name)) == {kept}


def test_daemon_errors_surface_as_wireguard_errors(gateway: tuple[UapiBackend, str, str]) -> None:
    _, name, _ = gateway
    with pytest.raises(WireGuardError, match="errno="):
        exchange(socket_path(name), "set=1\nlisten_port=not-a-port\n\n")


def test_a_missing_interface_is_reported_with_what_to_check(lab: NetnsLab) -> None:
    with pytest.raises(WireGuardError, match="is wireguard-go running"):
        UapiBackend().peers(lab.name("absent"))


def test_killed_daemon_is_restarted_and_reconfigured(gateway: tuple[UapiBackend, str, str], lab: NetnsLab) -> None:
    backend, name, ns = gateway
    desired = specs(2)
    restored: list[str] = []
    backend.on_restart = lambda interface: (backend.apply(interface, desired), restored.append(interface))
    backend.apply(name, desired)
    daemon = backend.daemons[name]
    old_pid = daemon.pid
    subprocess.run(["kill", "-9", str(old_pid)], check=True)
    deadline = time.monotonic() + 10
    while not restored and time.monotonic() < deadline:
        time.sleep(0.05)
    assert restored == [name] and daemon.pid != old_pid and daemon.restarts == 1
    assert set(backend.peers(name)) == set(desired)
    assert "10.77.0.1/16" in lab.run(ns, "ip", "-br", "addr", "show", name).stdout


ORPHANING_PARENT = """
import subprocess, sys
daemon = subprocess.Popen(["ip", "netns", "exec", sys.argv[1], "wireguard-go", "-f", sys.argv[2]],
                          env={"WG_PROCESS_FOREGROUND": "1", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(daemon.pid, flush=True)
"""


def test_a_wireguard_go_left_by_a_killed_gateway_is_ended_when_the_interface_starts_again(lab: NetnsLab) -> None:
    ns, name = lab.add("gw"), lab.name("wg")
    # The parent exits at once, as a gateway killed with kill -9: its wireguard-go is reparented to init.
    started = subprocess.run([sys.executable, "-c", ORPHANING_PARENT, ns, name], capture_output=True, text=True)
    orphan = int(started.stdout)
    deadline = time.monotonic() + 5
    while socket_server_pid(socket_path(name)) != orphan:
        assert time.monotonic() < deadline, "the orphaned wireguard-go never opened its socket"
        time.sleep(0.02)
    backend = UapiBackend(netns=ns)
    try:
        backend.ensure_interface(name, key_pair()[0], 51820, ["10.77.0.1/16"])
        assert not Path(f"/proc/{orphan}").exists() or "Z" in Path(f"/proc/{orphan}/stat").read_text().split()[2]
        assert backend.daemons[name].pid == socket_server_pid(socket_path(name)) != orphan
        assert lab.run(ns, "wg", "show", name, "listen-port").stdout.strip() == "51820"
    finally:
        backend.stop()
