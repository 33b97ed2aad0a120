"""The nftables ruleset generation of a network namespace, read over netfilter's own netlink socket.

The kernel raises the generation by one on every committed nftables transaction in the namespace, of any table and
by any program (``NFT_MSG_GETGEN``, include/uapi/linux/netfilter/nf_tables.h). The reconciler notes the generation its
own change produced; a later pass that reads the same number knows that nobody has touched the ruleset since, so its
sets still hold exactly the elements it put there, without listing 40,000 of them (``nft list`` of a 10,000-seat
table takes about half a second; this read takes well under a millisecond).
"""

import os
import socket
import struct
from itertools import count

from pyroute2.netns import create_socket

from gateway.vpn.nft import namespace_inode

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_GETGEN = 16
NFTA_GEN_ID = 1
NLM_F_REQUEST = 1
NLMSG_ERROR = 2
HEADER = struct.Struct("=IHHII")  # struct nlmsghdr
_NFGENMSG = struct.Struct("=BBH")  # struct nfgenmsg: family, version, resource id
ATTRIBUTE = struct.Struct("=HH")  # struct nlattr
_TIMEOUT_S = 5.0


class GenerationUnreadable(OSError):
    """The generation could not be read (no nf_tables in the kernel, no permission): nothing can be trusted."""


class RulesetGeneration:
    """Reads one namespace's nftables generation; the netlink socket is opened inside it once and kept (while the
    name stands for that namespace: ``KeptSocket``)."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self._socket = KeptSocket(netns)
        self._sequence = count(1)

    def read(self) -> int:
        """The generation now (a 32-bit number that wraps)."""
        try:
            sock = self._socket.get() or self._open()
            sequence = next(self._sequence) & 0xFFFFFFFF
            kind = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN
            request = _NFGENMSG.pack(socket.AF_UNSPEC, 0, 0)
            sock.send(HEADER.pack(HEADER.size + len(request), kind, NLM_F_REQUEST, sequence, 0) + request)
            while True:
                reply = sock.recv(65536)
                _, reply_kind, _, reply_sequence, _ = HEADER.unpack_from(reply)
                if reply_sequence == sequence:
                    break
        except OSError as error:
            self.close()
            raise GenerationUnreadable(f"could not read the nftables generation: {error}") from error
        if reply_kind == NLMSG_ERROR:
            (errno,) = struct.unpack_from("=i", reply, HEADER.size)
            raise GenerationUnreadable(f"the kernel refused to tell the nftables generation: {os.strerror(-errno)}")
        return _generation_of(reply)

    def close(self) -> None:
        self._socket.close()

    def _open(self) -> socket.socket:
        sock = self._socket.open()
        sock.settimeout(_TIMEOUT_S)
        return sock


class KeptSocket:
    """A netfilter socket kept open in a named namespace, given up when the name comes to stand for another one.

    A namespace deleted and made again under the same name (``ip netns del``, ``add``) is a new namespace; a socket
    opened in the old one would go on reading and changing that dead namespace's tables, and nothing would tell."""

    def __init__(self, netns: str | None) -> None:
        self.netns = netns
        self._socket: socket.socket | None = None
        self._opened_in: int | None = None
        """The namespace's inode, read before the socket was opened: one replaced in between is noticed by ``get``."""

    def get(self) -> socket.socket | None:
        """The kept socket; None when there is none, or when it was in a namespace the name no longer stands for
        (then closed). OSError when there is no namespace by that name."""
        if self._socket is not None and self.netns is not None and namespace_inode(self.netns) != self._opened_in:
            self.close()
        return self._socket

    def open(self) -> socket.socket:
        """A new socket in the namespace the name stands for now, kept."""
        self.close()
        self._opened_in = None if self.netns is None else namespace_inode(self.netns)
        self._socket = netfilter_socket(self.netns)
        return self._socket

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def netfilter_socket(netns: str | None) -> socket.socket:
    """A netfilter netlink socket in ``netns``. pyroute2 opens it inside the named namespace (in a short-lived
    child) and hands it over; a netlink socket stays in the namespace it was made in."""
    made: socket.socket = create_socket(netns, socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    return made


def _generation_of(reply: bytes) -> int:
    offset = HEADER.size + _NFGENMSG.size
    (length,) = struct.unpack_from("=I", reply)
    while offset + ATTRIBUTE.size <= length:
        size, kind = ATTRIBUTE.unpack_from(reply, offset)
        if kind & 0x3FFF == NFTA_GEN_ID:  # without the NLA_F_NESTED / NLA_F_NET_BYTEORDER flags
            (generation,) = struct.unpack_from(">I", reply, offset + ATTRIBUTE.size)
            return int(generation)
        offset += (size + 3) & ~3
    raise GenerationUnreadable("the kernel's answer carried no nftables generation")
