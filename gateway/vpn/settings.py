"""Settings of the VPN; the lead nests `VpnSettings` into the one Settings object as ``settings.vpn``.

Off in the embedded default: a WireGuard interface and an nftables table need root (CAP_NET_ADMIN) and
wireguard-go or the kernel module. When it is off, `VpnController.status()` says why in words.
"""

import ipaddress
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field, IPvAnyInterface, model_validator


class VpnSettings(BaseModel):
    """The gateway's WireGuard interface, the agents' address pools, and what agents are told to use."""

    enabled: bool = False
    """Run the tunnel. Needs root and wireguard-go (or the kernel module) and nft."""
    interface: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,15}$")] = "sohogw0"
    """Interface name; unique machine-wide when wireguard-go runs (its sockets share /var/run/wireguard)."""
    listen_port: Annotated[int, Field(ge=1, le=65535)] = 51820
    gateway_addresses: list[IPvAnyInterface] = [
        ipaddress.ip_interface("10.77.0.1/16"),
        ipaddress.ip_interface("fd77::1/64"),
    ]
    """The gateway's own tunnel addresses; their prefixes route the pools into the interface."""
    pool4: IPv4Network = IPv4Network("10.77.0.0/16")
    pool6: IPv6Network = IPv6Network("fd77::/64")
    hold_back_hours: Annotated[float, Field(ge=0)] = 24.0
    """A released address is kept for its last owner this long before anyone else may get it."""
    reconcile_seconds: Annotated[float, Field(gt=0, le=3600)] = 5.0
    """The safety-net period of the reconcile loop; session changes nudge it at once."""
    endpoint: str = "127.0.0.1:51820"
    """host:port the agents' WireGuard app connects to (written into their config)."""
    dns: list[str] = []
    """DNS servers for the agents' config; empty leaves DNS alone."""
    netns: str | None = None
    """Run the interface and the nftables table inside this named network namespace (tests do)."""
    private_key_file: Path | None = None
    """The gateway's WireGuard private key (base64); made on first start. Default ``<data_dir>/vpn/wg.key``."""
    firewall: bool = True
    """Load the nftables scope; only switch off behind a firewall that does the same job."""

    @model_validator(mode="after")
    def _gateway_inside_pools(self) -> "VpnSettings":
        for address in self.gateway_addresses:
            pool = self.pool4 if address.version == 4 else self.pool6
            if address.ip not in pool:
                raise ValueError(f"gateway address {address} lies outside the pool {pool}")
        if ":" not in self.endpoint.rsplit("]", 1)[-1]:
            raise ValueError("endpoint must be host:port")
        return self

    def key_file(self, data_dir: Path) -> Path:
        return self.private_key_file or data_dir / "vpn" / "wg.key"

    @property
    def interface_addresses(self) -> list[str]:
        return [str(address) for address in self.gateway_addresses]
