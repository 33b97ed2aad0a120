"""The gateway's VPN: WireGuard backends (kernel netlink, userspace UAPI) and the nftables scope.

The adapters here take plain data (keys, addresses, destinations) and never read the database or settings;
the reconciler in this package feeds them what the sessions' state says should exist.
"""
