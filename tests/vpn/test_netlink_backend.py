"""The kernel backend. Decoding is checked against pyroute2's own netlink codec; the live tests need the
WireGuard kernel module and skip without it."""

import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pyroute2.netlink.generic.wireguard import wgmsg

from gateway.vpn.backend import PeerSpec
from gateway.vpn.choose import backend_for, choose_backend, kernel_has_wireguard
from gateway.vpn.netlink import NetlinkBackend, merge_peers
from gateway.vpn.uapi import UapiBackend
from tests.vpn.keys import key_pair
from tests.vpn.netns import NetnsLab


def _allowed(address: str, mask: int) -> dict[str, Any]:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return {
        "attrs": [
            ["WGALLOWEDIP_A_FAMILY", family],
            ["WGALLOWEDIP_A_IPADDR", socket.inet_pton(family, address)],
            ["WGALLOWEDIP_A_CIDR_MASK", mask],
        ]
    }


def _dump_part(public_key: str, allowed: list[dict[str, Any]], stats: bool) -> wgmsg:
    """One message of a GET_DEVICE dump, encoded and decoded again by pyroute2 as the kernel's would be."""
    attrs: list[list[Any]] = [["WGPEER_A_PUBLIC_KEY", public_key]]
    if stats:
        attrs += [
            ["WGPEER_A_LAST_HANDSHAKE_TIME", {"tv_sec": 1700000000, "tv_nsec": 0}],
            ["WGPEER_A_RX_BYTES", 7],
            ["WGPEER_A_TX_BYTES", 9],
            ["WGPEER_A_ENDPOINT", {"addr": "192.168.1.2", "port": 40000}],
            ["WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL", 25],
        ]
    attrs.append(["WGPEER_A_ALLOWEDIPS", allowed])
    message = wgmsg()
    message["cmd"] = 0
    message["version"] = 1
    message["attrs"] = [["WGDEVICE_A_IFNAME", "wg0"], ["WGDEVICE_A_PEERS", [{"attrs": attrs}]]]
    message.encode()
    decoded = wgmsg(message.data)
    decoded.decode()
    return decoded


def test_a_peer_split_over_dump_messages_is_merged_with_its_first_messages_state() -> None:
    key = key_pair()[1]
    parts = [
        _dump_part(key, [_allowed("10.77.0.2", 32)], stats=True),
        _dump_part(key, [_allowed("fd77::2", 128)], stats=False),
    ]
    (peer,) = merge_peers(parts).values()
    assert peer.public_key == key
    assert peer.allowed_ips == {"10.77.0.2/32", "fd77::2/128"}
    assert peer.latest_handshake == datetime.fromtimestamp(1700000000, UTC)
    assert (peer.rx_bytes, peer.tx_bytes, peer.endpoint, peer.persistent_keepalive) == (7, 9, "192.168.1.2:40000", 25)


def test_a_peer_that_never_shook_hands_has_no_handshake_time() -> None:
    key = key_pair()[1]
    (peer,) = merge_peers([_dump_part(key, [_allowed("10.77.0.3", 32)], stats=False)]).values()
    assert peer.latest_handshake is None and peer.endpoint is None


def test_kernel_support_picks_netlink_and_its_absence_wireguard_go_with_the_restart_hook() -> None:
    def nudge(name: str) -> None:
        raise AssertionError(name)

    kernel = backend_for(True, "ns-a", on_restart=nudge)
    userspace = backend_for(False, "ns-b", on_restart=nudge)
    assert isinstance(kernel, NetlinkBackend) and kernel.netns == "ns-a"
    assert isinstance(userspace, UapiBackend) and userspace.netns == "ns-b" and userspace.on_restart is nudge


def _links(lab: NetnsLab, ns: str) -> list[str]:
    return lab.run(ns, "ip", "-o", "link", "show").stdout.split("\n")


def test_a_loaded_module_is_trusted_without_probing(lab: NetnsLab, tmp_path: Path) -> None:
    ns = lab.add("probe")
    before = _links(lab, ns)
    assert kernel_has_wireguard(ns, module=tmp_path) is True  # a directory standing where /sys/module/wireguard is
    assert _links(lab, ns) == before


def test_without_the_module_the_answer_is_whether_the_kernel_makes_a_wireguard_link(lab: NetnsLab) -> None:
    """The probe's answer against iproute2's own attempt (a different netlink client), and no probe link left."""
    ns = lab.add("probe")
    before = _links(lab, ns)
    made = lab.run(ns, "ip", "link", "add", "wgoracle", "type", "wireguard", check=False).returncode == 0
    if made:
        lab.run(ns, "ip", "link", "del", "wgoracle")
    assert kernel_has_wireguard(ns, module=Path("/nonexistent/module")) is made
    assert _links(lab, ns) == before
    assert isinstance(choose_backend(ns), NetlinkBackend if made else UapiBackend)


@pytest.fixture
def kernel_link(lab: NetnsLab) -> Iterator[tuple[NetlinkBackend, str]]:
    ns = lab.add("kgw")
    if not kernel_has_wireguard(ns):
        pytest.skip("this kernel has no WireGuard module (/sys/module/wireguard absent, link create refused)")
    backend = NetlinkBackend(ns)
    name = lab.name("wgk")
    backend.ensure_interface(name, key_pair()[0], 51820, ["10.77.0.1/16"])
    yield backend, name


@pytest.mark.kernel_feature
def test_kernel_apply_installs_exactly_the_desired_peers(kernel_link: tuple[NetlinkBackend, str]) -> None:
    backend, name = kernel_link
    peers = [PeerSpec.of(key_pair()[1], [f"10.77.0.{n}/32", f"fd77::{n}/128"]) for n in range(2, 5)]
    desired = {p.public_key: p for p in peers}
    assert len(backend.apply(name, desired).to_set) == 3
    assert {k: p.allowed_ips for k, p in backend.peers(name).items()} == {k: p.allowed_ips for k, p in desired.items()}
    assert not backend.apply(name, desired)
    smaller = dict(list(desired.items())[:1])
    assert len(backend.apply(name, smaller).to_remove) == 2
    assert set(backend.peers(name)) == set(smaller)
