"""A key that claims the addresses of a peer still on the interface, driven through InstalledTunnel's passes against
real nftables in a namespace; the interface is a dict (no wireguard-go needed: what is checked is the table)."""

import re
from collections.abc import Callable, Iterator, Mapping

import pytest

from gateway.vpn import nft
from gateway.vpn.backend import PeerChanges, PeerSpec
from gateway.vpn.reconcile import DesiredPeer, InstalledTunnel, PeerPlan, seats_of
from gateway.vpn.scope import Destination, TunnelScope
from gateway.vpn.settings import VpnSettings
from tests.vpn.netns import NetnsLab

WIDE = (Destination("172.30.0.0/24", "tcp", 443), Destination("10.0.0.0/8", "icmp"))
NARROW = (Destination("172.30.0.0/24", "tcp", 443),)


class InterfaceAsADict:
    """The WireGuard interface as the backend sees it: enough for InstalledTunnel's passes."""

    def __init__(self) -> None:
        self.live: dict[str, PeerSpec] = {}

    def change(self, name: str, changes: PeerChanges, begun: Callable[[], None] | None = None) -> None:
        for key in changes.to_remove:
            self.live.pop(key, None)
        for spec in changes.to_set:
            self.live[spec.public_key] = spec
        if begun is not None and changes.to_set:
            begun()

    def expect(self, name: str, peers: Mapping[str, PeerSpec]) -> None:
        pass

    def peer_configs(self, name: str, expected: object = None) -> Mapping[str, PeerSpec]:
        return dict(self.live)


def _peer(session: str, key: str, n: int, destinations: tuple[Destination, ...]) -> DesiredPeer:
    return DesiredPeer(session, key, f"10.77.0.{n}", f"fd77::{n}", destinations)


@pytest.fixture
def tunnel(lab: NetnsLab) -> Iterator[tuple[str, InstalledTunnel, InterfaceAsADict]]:
    ns = lab.add("claim")
    interface = InterfaceAsADict()
    installed = InstalledTunnel(interface, VpnSettings(interface="wgtest0", netns=ns))  # type: ignore[arg-type]
    yield ns, installed, interface
    installed.close()


def _elements(ns: str) -> set[tuple[str, str]]:
    return set(re.findall(r"(10\.77\.0\.\d+|fd77::\d+) : (jump \w+|continue)", nft.listing(ns)))


@pytest.mark.parametrize("new_scope", [NARROW, WIDE], ids=["same scope", "another scope"])
def test_a_new_key_that_claims_an_ending_leases_addresses_keeps_its_elements_after_the_end(
    tunnel: tuple[str, InstalledTunnel, InterfaceAsADict], new_scope: tuple[Destination, ...]
) -> None:
    """A person signs in again with a new certificate, so a new key K2: the address pool gives the same addresses, and
    the sign-in's start may reach the VPN in a pass before the end of the session it replaces (K1). The end's pass
    deleted the addresses' elements K2 held by then, and no later pass put them back (the peers were as desired):
    K2 was live with no element, everything it sent dropped (attacker review of the ninth round). Now the claim takes
    the addresses from K1 in the start's own pass, and the table is a whole load's of what stays."""
    ns, installed, interface = tunnel
    old, bystander = _peer("S1", "K1", 5, NARROW), _peer("S3", "K3", 6, WIDE)
    installed.apply_all({"K1": old, "K3": bystander}, {})
    new = _peer("S2", "K2", 5, new_scope)
    installed.apply_sessions(PeerPlan({"K2": new}, frozenset({"S2"}), frozenset({"K2"})))
    assert set(interface.live) == {"K2", "K3"}
    installed.apply_sessions(PeerPlan({}, frozenset({"S1"}), frozenset({"K1"})))
    assert set(interface.live) == {"K2", "K3"}
    incremental = _elements(ns)
    nft.apply(TunnelScope("wgtest0", seats_of([new, bystander])), ns)
    assert incremental == _elements(ns) and {address for address, _ in incremental} >= {"10.77.0.5", "fd77::5"}
    assert installed.chains == nft.chains_of(seats_of([new, bystander]))
