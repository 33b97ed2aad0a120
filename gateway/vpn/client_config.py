"""The agent's WireGuard configuration and its QR code.

The private key never leaves the agent's device: it was made there, and only its public half is bound in the
certificate. So the file carries a placeholder where the agent keeps the key of the tunnel their WireGuard app
made (docs/agent-setup.md). AllowedIPs is exactly the scope the policy grants, so nothing else on the home PC
is routed to us.
"""

import ipaddress
import json
from datetime import datetime

import segno
from sqlmodel import Session

from gateway.sessions.models import HomeSession
from gateway.vpn.errors import NoTunnel
from gateway.vpn.leases import lease_for_session
from gateway.vpn.models import TunnelLease
from gateway.vpn.settings import VpnSettings

PRIVATE_KEY_PLACEHOLDER = "<paste the private key your WireGuard app made for your certificate>"
KEEPALIVE_SECONDS = 25
"""Keeps the home router's NAT mapping open (WireGuard's own recommendation for peers behind NAT)."""


def allowed_networks(lease: TunnelLease) -> list[str]:
    """The networks of the lease's scope, merged per address family, IPv4 first."""
    networks = [ipaddress.ip_network(cidr, strict=False) for cidr, _proto, _port in json.loads(lease.scope)]
    merged: list[str] = []
    for version in (4, 6):
        family = [n for n in networks if n.version == version]
        merged += [str(n) for n in ipaddress.collapse_addresses(family)]  # type: ignore[type-var]
    return merged


def render_config(lease: TunnelLease, settings: VpnSettings, gateway_public_key: str) -> str:
    """The .conf text for one lease."""
    lines = [
        "# SOHO Gateway tunnel for " + lease.login,
        "# Your private key never leaves your device: keep the PrivateKey line of the tunnel your WireGuard app",
        "# made when you requested your certificate, in place of the placeholder below.",
        "[Interface]",
        f"PrivateKey = {PRIVATE_KEY_PLACEHOLDER}",
        f"Address = {lease.ipv4}/32, {lease.ipv6}/128",
    ]
    if settings.dns:
        lines.append("DNS = " + ", ".join(settings.dns))
    lines += [
        "",
        "[Peer]",
        f"PublicKey = {gateway_public_key}",
        f"Endpoint = {lease.gateway_endpoint or settings.endpoint}",
        f"AllowedIPs = {', '.join(allowed_networks(lease))}",
        f"PersistentKeepalive = {KEEPALIVE_SECONDS}",
        "",
    ]
    return "\n".join(lines)


def client_config(
    db: Session,
    session: HomeSession,
    settings: VpnSettings,
    gateway_public_key: str,
    now: datetime,
    node: str | None = None,
) -> str:
    """The session's config, writing its lease (owned by ``node``) if needed; refused for a session that may not
    tunnel."""
    lease = lease_for_session(db, session, now, settings, node)
    if lease is None:
        raise NoTunnel(
            "no tunnel for this session: sign in with the certificate that carries your WireGuard key, "
            "or ask your security admin to issue one"
        )
    return render_config(lease, settings, gateway_public_key)


def config_qr_svg(config: str) -> str:
    """The config as a QR code (SVG) for WireGuard's mobile apps; error level L keeps it scannable."""
    return segno.make(config, error="l", micro=False).svg_inline(scale=4)
