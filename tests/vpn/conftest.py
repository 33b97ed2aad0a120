"""Fixtures of the VPN tests: a fresh namespace lab per test, removed whatever happens."""

from collections.abc import Iterator

import pytest

from tests.support.components import require_programs
from tests.vpn.netns import NetnsLab

VPN_PROGRAMS = ("ip", "wireguard-go", "wg", "nft", "curl")
VPN_PACKAGES = "Debian: iproute2, wireguard-go, wireguard-tools, nftables, curl"


@pytest.fixture
def lab() -> Iterator[NetnsLab]:
    require_programs(*VPN_PROGRAMS, install=VPN_PACKAGES)
    with NetnsLab() as made:
        yield made
