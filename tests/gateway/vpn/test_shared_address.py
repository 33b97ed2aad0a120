"""Live leases that share an address, or a key, get no peer on a real wireguard-go (fail closed: WireGuard would move
the address to the peer set last, and one agent's traffic would go down another's tunnel), the other peers stay, and
a security admin reads each clash in the VPN's status; on SQLite and PostgreSQL."""

import base64
import os

import pytest

from tests.gateway.vpn.test_vpn_workers import Gateway, _sign_in, gateway  # noqa: F401 (the fixture)

pytestmark = pytest.mark.e2e


def test_leases_that_share_an_address_or_a_key_get_no_peer_and_the_others_keep_theirs(gateway: Gateway) -> None:  # noqa: F811
    engine = gateway.engine
    _, alone, alone4, alone6 = _sign_in(engine, nudge=False)
    first, first_key, ipv4, ipv6 = _sign_in(engine, nudge=False)
    gateway.controller.start()  # the first, full pass
    assert gateway.peers() == {alone, first_key}
    assert gateway.controller.status()["refused"] == []

    # A lease on the first one's addresses (IPAM's fault); two on one IPv6 address alone; two with one key.
    second, *_ = _sign_in(engine, nudge=False, addresses=(ipv4, ipv6))
    third, _, _, shared6 = _sign_in(engine, nudge=False)
    fourth, *_ = _sign_in(engine, nudge=False, addresses=("10.77.200.2", shared6))
    key = base64.b64encode(os.urandom(32)).decode()
    fifth, *_ = _sign_in(engine, nudge=False, key=key)
    sixth, *_ = _sign_in(engine, nudge=False, key=key)
    gateway.controller.run_once()  # the safety net's full pass

    assert gateway.peers() == {alone}
    assert gateway.seats_in_scope() == {alone4, alone6}
    refused = gateway.controller.status()["refused"]
    assert isinstance(refused, list)
    clashes = [
        {"claimed": "address", "value": ipv4, "sessions": sorted([first, second])},
        {"claimed": "address", "value": ipv6, "sessions": sorted([first, second])},
        {"claimed": "address", "value": shared6, "sessions": sorted([third, fourth])},
        {"claimed": "key", "value": key, "sessions": sorted([fifth, sixth])},
    ]
    assert sorted(refused, key=str) == sorted(clashes, key=str)
