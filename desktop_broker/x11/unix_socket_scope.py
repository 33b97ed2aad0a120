"""Keep a seat's processes off abstract Unix sockets that were not created inside their own process tree.

Abstract sockets (`@name`) have no file, hence no permissions: any local process may connect to one another
program listens on (a container runtime's, a session bus, another seat's). Landlock's scope
`LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET` (Linux 6.12, Landlock ABI 6) refuses a process `connect()`/`sendto()`
to an abstract socket bound outside its Landlock domain, with EPERM. Each seat process gets a domain of its
own between fork and exec; the X servers listen on their filesystem socket only (`Xvfb -nolisten local`),
which X clients fall back to when the abstract one is refused as absent. Filesystem sockets, /tmp and
/dev/shm are not covered: see docs/seats.md, "Caveats".
"""

import ctypes
import logging
import struct
from functools import cache

log = logging.getLogger(__name__)

_SYS_LANDLOCK_CREATE_RULESET = 444  # same number on x86_64 and aarch64 (asm-generic unistd)
_SYS_LANDLOCK_RESTRICT_SELF = 446
_LANDLOCK_CREATE_RULESET_VERSION = 1 << 0
_LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0
_SCOPE_ABI = 6
_PR_SET_NO_NEW_PRIVS = 38
# struct landlock_ruleset_attr { __u64 handled_access_fs, handled_access_net, scoped; }: nothing on files or
# the network (nftables does that), only the abstract-socket scope.
_RULESET_ATTR = ctypes.create_string_buffer(struct.pack("=QQQ", 0, 0, _LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET), 24)
_libc = ctypes.CDLL(None, use_errno=True)


@cache
def supported() -> bool:
    """Whether this kernel scopes abstract Unix sockets; asked once, in the broker (never in a forked child)."""
    abi: int = _libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, None, 0, _LANDLOCK_CREATE_RULESET_VERSION)
    if abi < _SCOPE_ABI:
        log.warning(
            "Landlock ABI %d (needs %d, Linux 6.12): seats can reach every abstract Unix socket", abi, _SCOPE_ABI
        )
    return abi >= _SCOPE_ABI


def confine_calling_process() -> None:
    """Put the calling process (a seat's child between fork and exec) in a new Landlock domain.

    System calls only, as a `preexec_fn` must. `no_new_privs` is what Landlock demands of an unprivileged
    caller; the seat user has nothing to gain from setuid programs anyway. Raises OSError, so the seat does
    not start, when the kernel refuses.
    """
    ruleset = _libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, _RULESET_ATTR, 24, 0)
    if ruleset < 0 or _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset or PR_SET_NO_NEW_PRIVS refused")
    if _libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0) != 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self refused")
