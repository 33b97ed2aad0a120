"""``sohogw vpn down``: what the service manager runs after the gateway stops or dies, so tunnels fail closed."""

import click

from gateway.settings import get_settings
from gateway.vpn.interface import delete_link, link_exists


@click.group()
def vpn() -> None:
    """The WireGuard interface of this node."""


@vpn.command("down")
def vpn_down() -> None:
    """Delete this node's WireGuard interface and every peer on it.

    A kernel WireGuard link outlives the process that configured it: after a crash, a stop, or a restart loop
    that never gets back (the database unreachable), its peers would keep forwarding for agents whose sessions
    end meanwhile, with no gateway to remove them. systemd runs this as ``ExecStopPost``; the next start builds
    the interface again from the database. wireguard-go's TUN device goes the same way, and the process exits with
    it. An interface already gone is not an error."""
    vpn_settings = get_settings().vpn
    name, netns = vpn_settings.interface, vpn_settings.netns
    if not link_exists(name, netns):
        click.echo(f"no interface {name}")
        return
    delete_link(name, netns)
    click.echo(f"deleted interface {name} and its peers")
