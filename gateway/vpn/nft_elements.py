"""Seats' elements added to and deleted from our table's maps over netfilter's netlink socket, in one transaction.

``nft -f`` spent most of a 10,000-seat change parsing its own text (then 40,000 elements: 200-320 ms of nft's CPU
beside ~110-160 ms of the kernel's), and fetched a set's elements before it deleted one of them (16-32 ms). The
kernel takes the same elements as ``NFT_MSG_NEWSETELEM`` / ``NFT_MSG_DELSETELEM`` messages (include/uapi/linux/
netfilter/nf_tables.h) between a batch's begin and end, which is one nftables transaction: all of it or nothing. The
bytes are those nft 1.0.6 sends (``nft --debug=mnl``): an element's key is the seat's address in network order, its
data (added only: a deletion names the key) the verdict, a jump with the chain's name or a continue. A scope chain
whose last seat goes is deleted in the same batch (``NFT_MSG_DELCHAIN``, with its rules), after the elements that
jumped to it.
"""

import functools
import os
import socket
import struct
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import count

from gateway.vpn.nft import TABLE, FirewallError, ScopeChain, scope_chain
from gateway.vpn.nft_generation import (
    ATTRIBUTE,
    HEADER,
    NFNL_SUBSYS_NFTABLES,
    NLM_F_REQUEST,
    NLMSG_ERROR,
    KeptSocket,
)
from gateway.vpn.scope import TunnelScope, seat_address

NFT_MSG_DELCHAIN = 5
NFT_MSG_NEWSETELEM = 12
NFT_MSG_DELSETELEM = 14
NFNL_MSG_BATCH_BEGIN = 16
NFNL_MSG_BATCH_END = 17
NFTA_SET_ELEM_LIST_TABLE = 1
NFTA_SET_ELEM_LIST_SET = 2
NFTA_SET_ELEM_LIST_ELEMENTS = 3
NFTA_LIST_ELEM = 1
NFTA_SET_ELEM_KEY = 1
NFTA_SET_ELEM_DATA = 2
NFTA_DATA_VALUE = 1
NFTA_DATA_VERDICT = 2
NFTA_VERDICT_CODE = 1
NFTA_VERDICT_CHAIN = 2
NFT_CONTINUE = -1
NFT_JUMP = -3
NFTA_CHAIN_TABLE = 1
NFTA_CHAIN_NAME = 3
NLA_F_NESTED = 0x8000
NLM_F_ACK = 0x4
NLM_F_CREATE = 0x400
NFPROTO_INET = 1
NETLINK_CAP_ACK = 10  # an error answer carries the failed message's header only, not its 64 KB
SOL_NETLINK = 270
SO_SNDBUFFORCE = 32  # root may raise the send buffer past wmem_max: a batch must go in one send
_NLMSGERR = struct.Struct("=i")
_ELEMENTS_PER_MESSAGE = 60_000
"""Bytes of elements in one message: an attribute's length is 16 bits, so the list of elements stays below 64 KB."""
_TABLE_NAME = TABLE.split()[1]
_TABLE_FAMILY = NFPROTO_INET  # TABLE is "inet sohogw"


def _attribute_header(size: int, kind: int) -> bytes:
    return ATTRIBUTE.pack(size, kind)


def _attribute(kind: int, payload: bytes) -> bytes:
    size = 4 + len(payload)
    return _attribute_header(size, kind) + payload + bytes(-size % 4)


@dataclass(frozen=True)
class _Pieces:
    """One seat's element around its address, ``before + seat + after``: the same for every seat of one family with
    one scope (``after`` is the verdict, empty in an element named for deletion)."""

    map_name: str
    before: bytes
    after: bytes = b""

    def of(self, seat: bytes) -> bytes:
        return self.before + seat + self.after


@functools.lru_cache(maxsize=4096)
def _pieces(version: int, chain: ScopeChain | None, verdict: bool) -> _Pieces:
    length = 4 if version == 4 else 16
    data = b""
    if verdict:
        code = _attribute(NFTA_VERDICT_CODE, struct.pack(">i", NFT_CONTINUE if chain is None else NFT_JUMP))
        if chain is not None:
            code += _attribute(NFTA_VERDICT_CHAIN, chain.name.encode() + b"\0")
        data = _attribute(
            NFTA_SET_ELEM_DATA | NLA_F_NESTED, _attribute(NFTA_DATA_VERDICT | NLA_F_NESTED, code)
        )  # fmt: skip
    # An address is whole 4-byte words, so no attribute here needs padding.
    key = _attribute_header(8 + length, NFTA_SET_ELEM_KEY | NLA_F_NESTED)
    key += _attribute_header(4 + length, NFTA_DATA_VALUE)
    element = _attribute_header(4 + len(key) + length + len(data), NFTA_LIST_ELEM | NLA_F_NESTED)
    return _Pieces(f"seats{version}", element + key, data)


@functools.lru_cache(maxsize=1 << 17)
def _packed(seat: str) -> tuple[int, bytes]:
    # Cached: a whole first pass names the same 20,000 seats each life.
    address = seat_address(seat)
    return address.version, address.packed


def elements_by_set(scope: TunnelScope, verdicts: bool = True) -> dict[str, list[bytes]]:
    """Each seat's element of ``scope`` as a netlink attribute, by map name (validated first: a bad scope raises
    ScopeError and nothing is sent); without ``verdicts``, the keys alone, as a deletion names them. Each element's
    key is its seat's address, as in ``nft.render``."""
    scope.validate()
    by_set: dict[str, list[bytes]] = {}
    # Seats share a few destination lists: each list's pieces are looked up once per family, by identity (hashing
    # a list of Destinations for the cache cost more than making the seat's elements).
    known: dict[tuple[int, int], _Pieces] = {}
    for seat, destinations in scope.seats.items():
        version, packed = _packed(seat)
        pieces = known.get((version, id(destinations)))
        if pieces is None:
            chain = scope_chain(version, tuple(destinations)) if verdicts else None
            pieces = known[version, id(destinations)] = _pieces(version, chain, verdicts)
        by_set.setdefault(pieces.map_name, []).append(pieces.of(packed))
    return by_set


class SetElements:
    """Adds and deletes seats' elements in one namespace's ``inet sohogw`` table; the socket is opened inside the
    namespace once and kept (while the name stands for that namespace: ``KeptSocket``). One change at a time (the
    reconciler applies one pass at a time)."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self._socket = KeptSocket(netns)
        self._sequence = count(1)

    def change(self, removed: TunnelScope, added: TunnelScope, chains_gone: Collection[ScopeChain] = ()) -> None:
        """Delete the ``removed`` seats' elements, add the ``added`` ones (their scopes' chains must be in the table
        already), then delete ``chains_gone``, in one kernel transaction, leaving the table's other chains and every
        other seat as they are. Raises FirewallError when the kernel refuses any of it (an element to delete is not
        there, an added one is, a chain to delete is still jumped to): nothing is then changed."""
        messages = [
            *self._messages(NFT_MSG_DELSETELEM, 0, elements_by_set(removed, verdicts=False)),
            *self._messages(NFT_MSG_NEWSETELEM, NLM_F_CREATE, elements_by_set(added)),
            *(self._chain_deletion(chain) for chain in chains_gone),
        ]
        if not messages:
            return
        begin, end = self._batch_edge(NFNL_MSG_BATCH_BEGIN), self._batch_edge(NFNL_MSG_BATCH_END)
        batch = b"".join([begin, *(message for _, _, message in messages), end])
        try:
            sock = self._socket.get() or self._open()
            sock.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, len(batch) + 4096)
            sock.send(batch)  # the kernel runs the whole batch before send returns; its answers are then queued
            errors = self._answers(sock, {sequence: what for sequence, what, _ in messages})
        except OSError as error:
            self.close()
            raise FirewallError(f"could not change the scope's set elements over netlink: {error}") from error
        if errors:
            self.close()  # whatever else the kernel may still queue is not read by the next change
            raise FirewallError(f"nftables refused the scope's elements: {'; '.join(errors)}")

    def close(self) -> None:
        self._socket.close()

    def _messages(self, kind: int, flags: int, by_set: dict[str, list[bytes]]) -> Iterator[tuple[int, str, bytes]]:
        verb = "delete" if kind == NFT_MSG_DELSETELEM else "add"
        for set_name, elements in by_set.items():
            names = _attribute(NFTA_SET_ELEM_LIST_TABLE, _TABLE_NAME.encode() + b"\0") + _attribute(
                NFTA_SET_ELEM_LIST_SET, set_name.encode() + b"\0"
            )
            for part in _parts(elements):
                sequence = next(self._sequence) & 0xFFFFFFFF
                body = (
                    struct.pack("=BBH", _TABLE_FAMILY, 0, 0)
                    + names
                    + _attribute_header(4 + len(part), NFTA_SET_ELEM_LIST_ELEMENTS | NLA_F_NESTED)
                    + part
                )
                yield sequence, f"{verb} in {set_name}", self._message(kind, flags, sequence, body)

    def _chain_deletion(self, chain: ScopeChain) -> tuple[int, str, bytes]:
        """The deletion of a chain and its rules (no ``NLM_F_NONREC``: the kernel deletes the rules with it)."""
        sequence = next(self._sequence) & 0xFFFFFFFF
        body = (
            struct.pack("=BBH", _TABLE_FAMILY, 0, 0)
            + _attribute(NFTA_CHAIN_TABLE, _TABLE_NAME.encode() + b"\0")
            + _attribute(NFTA_CHAIN_NAME, chain.name.encode() + b"\0")
        )
        return sequence, f"delete chain {chain.name}", self._message(NFT_MSG_DELCHAIN, 0, sequence, body)

    @staticmethod
    def _message(kind: int, flags: int, sequence: int, body: bytes) -> bytes:
        header = HEADER.pack(
            HEADER.size + len(body), (NFNL_SUBSYS_NFTABLES << 8) | kind, NLM_F_REQUEST | NLM_F_ACK | flags, sequence, 0
        )
        return header + body

    def _batch_edge(self, kind: int) -> bytes:
        body = struct.pack("=BB", socket.AF_UNSPEC, 0) + struct.pack(">H", NFNL_SUBSYS_NFTABLES)
        sequence = next(self._sequence) & 0xFFFFFFFF
        return HEADER.pack(HEADER.size + len(body), kind, NLM_F_REQUEST, sequence, 0) + body

    def _answers(self, sock: socket.socket, asked: Mapping[int, str]) -> list[str]:
        """The kernel's answers to the batch, in words, when any is an error: one acknowledgement per message
        (NLM_F_ACK), an error in place of it for a message refused, or one error for a commit that failed."""
        answered: dict[int, int] = {}
        while not asked.keys() <= answered.keys():
            try:
                answer = sock.recv(1 << 20)
            except BlockingIOError:  # nothing more queued: the kernel answered all it will
                break
            answered |= _acknowledgements(answer)
        errors = [
            f"{asked.get(sequence, 'commit of the batch')}: {os.strerror(-errno)}"
            for sequence, errno in answered.items()
            if errno
        ]
        if not errors and not asked.keys() <= answered.keys():
            errors.append(f"{len(asked.keys() - answered.keys())} of {len(asked)} messages were not answered")
        return errors

    def _open(self) -> socket.socket:
        sock = self._socket.open()
        sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        sock.setblocking(False)  # answers are queued before send returns; an empty queue means no more
        return sock


def _parts(elements: Sequence[bytes]) -> Iterator[bytes]:
    """The elements joined into pieces of at most ``_ELEMENTS_PER_MESSAGE`` bytes."""
    part: list[bytes] = []
    size = 0
    for element in elements:
        if size + len(element) > _ELEMENTS_PER_MESSAGE and part:
            yield b"".join(part)
            part, size = [], 0
        part.append(element)
        size += len(element)
    if part:
        yield b"".join(part)


def _acknowledgements(answer: bytes) -> dict[int, int]:
    """The error code (0: done) of each message an answer acknowledges, by its sequence number."""
    found: dict[int, int] = {}
    offset = 0
    while offset + HEADER.size <= len(answer):
        length, kind, _, _, _ = HEADER.unpack_from(answer, offset)
        if kind == NLMSG_ERROR:  # struct nlmsgerr: the error, then the header of the message it answers
            (errno,) = _NLMSGERR.unpack_from(answer, offset + HEADER.size)
            _, _, _, sequence, _ = HEADER.unpack_from(answer, offset + HEADER.size + _NLMSGERR.size)
            found[sequence] = errno
        offset += max(HEADER.size, (length + 3) & ~3)
    return found
