"""VPN settings refuse contradictions; the gateway's key is made once, private, and refused when exposed."""

import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.vpn.backend import WireGuardError
from gateway.vpn.controller import unavailable_reason
from gateway.vpn.keys import load_or_create_private_key, public_key_of
from gateway.vpn.settings import VpnSettings


def test_a_gateway_address_outside_its_pool_is_refused() -> None:
    with pytest.raises(ValidationError, match="outside the pool"):
        VpnSettings.model_validate({"gateway_addresses": ["10.99.0.1/16"]})


def test_an_endpoint_without_a_port_is_refused() -> None:
    with pytest.raises(ValidationError, match="host:port"):
        VpnSettings(endpoint="vpn.corp.example")


def test_the_embedded_default_is_off_and_says_why() -> None:
    reason = unavailable_reason(VpnSettings())
    assert reason is not None and reason.startswith("VPN off:") and "enabled" in reason


def test_the_gateway_key_is_made_once_with_mode_600_and_then_reused(tmp_path: Path) -> None:
    path = tmp_path / "vpn" / "wg.key"
    key = load_or_create_private_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_private_key(path) == key
    assert len(public_key_of(key)) == 44


def test_a_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "wg.key"
    load_or_create_private_key(path)
    path.chmod(0o644)
    with pytest.raises(WireGuardError, match="chmod 600"):
        load_or_create_private_key(path)
