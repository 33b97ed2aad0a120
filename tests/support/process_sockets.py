"""Read a socket option on another process's TCP connections, as the kernel holds it.

A test that wants to know whether a server set an option (TCP_NODELAY, say) on a connection it made cannot ask the
server; this finds the connections among the process's descriptors by their remote port (/proc/PID/net/tcp) and
copies each descriptor with pidfd_getfd(2) (Linux 5.6+; needs ptrace rights over the process: root in the tests).
"""

import ctypes
import os
import socket
from pathlib import Path

SYS_PIDFD_OPEN = 434
SYS_PIDFD_GETFD = 438
_libc = ctypes.CDLL(None, use_errno=True)


def _syscall(number: int, *arguments: int) -> int:
    result = int(_libc.syscall(number, *arguments))
    if result < 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))
    return result


def _descriptors_to(pid: int, remote_port: int) -> list[int]:
    """The process's descriptors of IPv4 TCP connections whose remote end is `remote_port`."""
    inodes = set()
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[2].rsplit(":", 1)[1], 16) == remote_port:
            inodes.add(f"socket:[{fields[9]}]")
    found = []
    for entry in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(entry) in inodes:
                found.append(int(entry.name))
        except FileNotFoundError:  # closed while we looked
            continue
    return found


def socket_options(pid: int, remote_port: int, level: int, option: int) -> list[int]:
    """`getsockopt(level, option)` of each of process `pid`'s TCP connections to `remote_port`."""
    pidfd = _syscall(SYS_PIDFD_OPEN, pid, 0)
    try:
        values = []
        for descriptor in _descriptors_to(pid, remote_port):
            with socket.socket(fileno=_syscall(SYS_PIDFD_GETFD, pidfd, descriptor, 0)) as copy:
                values.append(copy.getsockopt(level, option))
        return values
    finally:
        os.close(pidfd)
