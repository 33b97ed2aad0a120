"""Fixtures of the VPN tests: a fresh namespace lab per test, removed whatever happens."""

import shutil
from collections.abc import Iterator

import pytest

from tests.vpn.netns import NetnsLab


@pytest.fixture
def lab() -> Iterator[NetnsLab]:
    for tool in ("ip", "wireguard-go", "wg", "nft", "curl"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (Debian: iproute2, wireguard-go, wireguard-tools, nftables, curl)")
    with NetnsLab() as made:
        yield made
