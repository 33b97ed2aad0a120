"""A Landlock domain for each seat process: what it may not reach outside itself, whatever its Unix user may.

All of a seat's processes run as one Unix user, so Unix permissions do not keep them apart. Each gets a Landlock
domain of its own between fork and exec (its children inherit it), which refuses with EPERM (Linux 6.12, Landlock
ABI 6):
- `connect()`/`sendto()` to an abstract Unix socket bound outside the domain (`LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET`).
  Abstract sockets (`@name`) have no file, hence no permissions: any local process may connect to one another
  program listens on (a container runtime's, a session bus, another seat's). The X servers listen on their
  filesystem socket only (`Xvfb -nolisten local`), which X clients fall back to when the abstract one is refused.
- signals to processes outside the domain (`LANDLOCK_SCOPE_SIGNAL`): the app cannot kill or stop its seat's
  x11vnc or Xvfb, nor another seat's processes. Landlock already keeps a domain from `ptrace`-ing (and so reading
  or writing the memory of) a process outside it.
and, except for x11vnc, which must listen: `bind()` of any TCP port (`LANDLOCK_ACCESS_NET_BIND_TCP` handled,
no port allowed; ABI 4), with EACCES. Should x11vnc die anyway (the app may still `prlimit` its CPU time, and
the kernel's SIGKILL at that limit is no signal from the app), the app cannot take its loopback port and answer
the gateway's bridge, supervisors or the recorder in its place. Outgoing connections stay nftables' business (`egress`).
Filesystem sockets, /tmp and /dev/shm are not covered: see docs/seats.md, "Caveats".
"""

import ctypes
import logging
import struct
from functools import cache

log = logging.getLogger(__name__)

_SYS_LANDLOCK_CREATE_RULESET = 444  # same number on x86_64 and aarch64 (asm-generic unistd)
_SYS_LANDLOCK_RESTRICT_SELF = 446
_LANDLOCK_CREATE_RULESET_VERSION = 1 << 0
_LANDLOCK_ACCESS_NET_BIND_TCP = 1 << 0
_LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0
_LANDLOCK_SCOPE_SIGNAL = 1 << 1
_SCOPE_ABI = 6
_PR_SET_NO_NEW_PRIVS = 38
_SCOPES = _LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | _LANDLOCK_SCOPE_SIGNAL


def _ruleset_attr(handled_access_net: int) -> ctypes.Array[ctypes.c_char]:
    """struct landlock_ruleset_attr { __u64 handled_access_fs, handled_access_net, scoped; }: nothing on files; a
    handled network right with no rule added is refused on every port."""
    return ctypes.create_string_buffer(struct.pack("=QQQ", 0, handled_access_net, _SCOPES), 24)


_LISTENER_ATTR = _ruleset_attr(0)
_NON_LISTENER_ATTR = _ruleset_attr(_LANDLOCK_ACCESS_NET_BIND_TCP)
_libc = ctypes.CDLL(None, use_errno=True)


@cache
def supported() -> bool:
    """Whether this kernel has the scopes (ABI 6); asked once, in the broker (never in a forked child)."""
    abi: int = _libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, None, 0, _LANDLOCK_CREATE_RULESET_VERSION)
    if abi < _SCOPE_ABI:
        log.warning(
            "Landlock ABI %d (needs %d, Linux 6.12): seat processes can reach every abstract Unix socket, signal "
            "each other and listen on TCP ports",
            abi,
            _SCOPE_ABI,
        )
    return abi >= _SCOPE_ABI


def confine_calling_process(may_listen_tcp: bool) -> None:
    """Put the calling process (a seat's child between fork and exec) in a new Landlock domain.

    System calls only, as a `preexec_fn` must. `no_new_privs` is what Landlock demands of an unprivileged
    caller; the seat user has nothing to gain from setuid programs anyway. Raises OSError, so the seat does
    not start, when the kernel refuses.
    """
    attr = _LISTENER_ATTR if may_listen_tcp else _NON_LISTENER_ATTR
    ruleset = _libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, attr, 24, 0)
    if ruleset < 0 or _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset or PR_SET_NO_NEW_PRIVS refused")
    if _libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0) != 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self refused")
