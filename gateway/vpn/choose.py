"""Pick the WireGuard backend this machine can run: the kernel when it has WireGuard, else wireguard-go."""

import secrets
from collections.abc import Callable
from pathlib import Path

from gateway.vpn.backend import WireGuardBackend, WireGuardError
from gateway.vpn.interface import create_kernel_link, delete_link
from gateway.vpn.netlink import NetlinkBackend
from gateway.vpn.uapi import UapiBackend

WIREGUARD_MODULE = Path("/sys/module/wireguard")


def kernel_has_wireguard(netns: str | None = None, module: Path = WIREGUARD_MODULE) -> bool:
    """True when the ``module`` is loaded, or when a throw-away WireGuard link can be created in ``netns`` (a
    built-in or auto-loaded module); the probe link is deleted again."""
    if module.exists():
        return True
    probe = f"wgprobe{secrets.token_hex(3)}"
    try:
        create_kernel_link(probe, netns)
    except WireGuardError:
        return False
    delete_link(probe, netns)
    return True


def backend_for(
    kernel_support: bool, netns: str | None = None, on_restart: Callable[[str], None] | None = None
) -> WireGuardBackend:
    """The netlink backend when the kernel supports WireGuard (faster, no daemon), else UAPI + wireguard-go, whose
    supervisor calls ``on_restart`` after restarting a daemon that died (it comes back without peers)."""
    if kernel_support:
        return NetlinkBackend(netns)
    return UapiBackend(netns, on_restart=on_restart)


def choose_backend(netns: str | None = None, on_restart: Callable[[str], None] | None = None) -> WireGuardBackend:
    """The backend this machine can run (``backend_for`` what the kernel offers in ``netns``)."""
    return backend_for(kernel_has_wireguard(netns), netns, on_restart)
