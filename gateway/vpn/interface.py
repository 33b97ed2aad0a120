"""Addresses, link state and routes of a tunnel interface, through rtnetlink (pyroute2's IPRoute).

Works the same for a kernel WireGuard link and for wireguard-go's TUN device. With `netns` set, pyroute2
opens its socket inside that named namespace; without it, the current one is used (also when the whole
gateway runs under `ip netns exec`).
"""

import ipaddress

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from gateway.vpn.backend import WireGuardError


def netns_prefix(netns: str | None) -> list[str]:
    """Command prefix that runs a program inside a named network namespace (none for the current one)."""
    return ["ip", "netns", "exec", netns] if netns else []


def configure_link(name: str, addresses: list[str], netns: str | None = None) -> None:
    """Give the interface exactly these addresses (CIDR), leave link-local ones alone, and bring it up."""
    wanted = {ipaddress.ip_interface(a) for a in addresses}
    with IPRoute(netns=netns) as ipr:
        index = _index(ipr, name)
        present = {
            ipaddress.ip_interface(f"{msg.get('IFA_ADDRESS')}/{msg['prefixlen']}") for msg in ipr.get_addr(index=index)
        }
        for address in present - wanted:
            if not address.is_link_local:
                ipr.addr("del", index=index, address=str(address.ip), prefixlen=address.network.prefixlen)
        for address in wanted - present:
            ipr.addr("add", index=index, address=str(address.ip), prefixlen=address.network.prefixlen)
        ipr.link("set", index=index, state="up")


def link_exists(name: str, netns: str | None = None) -> bool:
    with IPRoute(netns=netns) as ipr:
        return bool(ipr.link_lookup(ifname=name))


def _index(ipr: IPRoute, name: str) -> int:
    found = ipr.link_lookup(ifname=name)
    if not found:
        raise WireGuardError(f"network interface {name!r} does not exist; start or create it first")
    return int(found[0])


def create_kernel_link(name: str, netns: str | None = None) -> None:
    """Create a kernel WireGuard link; raises WireGuardError when the kernel has no WireGuard support."""
    with IPRoute(netns=netns) as ipr:
        try:
            ipr.link("add", ifname=name, kind="wireguard")
        except NetlinkError as exc:
            raise WireGuardError(f"the kernel cannot create WireGuard link {name!r}: {exc}") from exc


def delete_link(name: str, netns: str | None = None) -> None:
    with IPRoute(netns=netns) as ipr:
        for index in ipr.link_lookup(ifname=name):
            ipr.link("del", index=index)
