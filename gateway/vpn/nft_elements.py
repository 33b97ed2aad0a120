"""Seats' elements added to and deleted from our table's sets over netfilter's netlink socket, in one transaction.

``nft -f`` spent most of a 10,000-seat change parsing its own text (40,000 elements: 200-320 ms of nft's CPU beside
~110-160 ms of the kernel's), and fetched a set's elements before it deleted one of them (16-32 ms). The kernel takes
the same elements as ``NFT_MSG_NEWSETELEM`` / ``NFT_MSG_DELSETELEM`` messages (include/uapi/linux/netfilter/
nf_tables.h) between a batch's begin and end, which is one nftables transaction: all of it or nothing. The bytes are
those nft 1.0.6 sends (``nft --debug=mnl``): a key is the element's fields one after another, each padded to 4
bytes (addresses in network order, the protocol one byte, the port two bytes big-endian); an element of a
concatenated interval set carries its first key and its last (``NFTA_SET_ELEM_KEY_END``): the seat, then the
network's first and last address, then the first and last port.
"""

import functools
import os
import socket
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import count

from gateway.vpn.nft import TABLE, FirewallError
from gateway.vpn.nft_generation import (
    ATTRIBUTE,
    HEADER,
    NFNL_SUBSYS_NFTABLES,
    NLM_F_REQUEST,
    NLMSG_ERROR,
    KeptSocket,
)
from gateway.vpn.scope import Destination, TunnelScope, disjoint_boxes, seat_address

NFT_MSG_NEWSETELEM = 12
NFT_MSG_DELSETELEM = 14
NFNL_MSG_BATCH_BEGIN = 16
NFNL_MSG_BATCH_END = 17
NFTA_SET_ELEM_LIST_TABLE = 1
NFTA_SET_ELEM_LIST_SET = 2
NFTA_SET_ELEM_LIST_ELEMENTS = 3
NFTA_LIST_ELEM = 1
NFTA_SET_ELEM_KEY = 1
NFTA_SET_ELEM_KEY_END = 10
NFTA_DATA_VALUE = 1
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
_PROTOCOLS = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP}
_TABLE_NAME = TABLE.split()[1]
_TABLE_FAMILY = NFPROTO_INET  # TABLE is "inet sohogw"


def _attribute_header(size: int, kind: int) -> bytes:
    return ATTRIBUTE.pack(size, kind)


def _attribute(kind: int, payload: bytes) -> bytes:
    size = 4 + len(payload)
    return _attribute_header(size, kind) + payload + bytes(-size % 4)


@dataclass(frozen=True)
class _Pieces:
    """One element of a seat, around the seat's address: ``before + seat`` in a set of addresses, else
    ``before + seat + middle + seat + after`` (the key from the seat and ``first``, its end from the seat and
    ``last``). The same for every seat of one family with one destination box."""

    set_name: str
    before: bytes
    middle: bytes | None = None
    after: bytes = b""

    def of(self, seat: bytes) -> bytes:
        return self.before + seat if self.middle is None else self.before + seat + self.middle + seat + self.after


def _element_pieces(set_name: str, seat_length: int, first: bytes = b"", last: bytes | None = None) -> _Pieces:
    # Keys are whole 4-byte words, so no attribute here needs padding.
    value = 4 + seat_length + len(first)  # NFTA_DATA_VALUE: its header, the seat, the rest of the key
    key = _attribute_header(4 + value, NFTA_SET_ELEM_KEY | NLA_F_NESTED) + _attribute_header(value, NFTA_DATA_VALUE)
    if last is None:
        return _Pieces(set_name, _attribute_header(4 + len(key) + seat_length, NFTA_LIST_ELEM | NLA_F_NESTED) + key)
    key_end = _attribute_header(4 + value, NFTA_SET_ELEM_KEY_END | NLA_F_NESTED)
    key_end += _attribute_header(value, NFTA_DATA_VALUE)
    element = _attribute_header(4 + 2 * (4 + value), NFTA_LIST_ELEM | NLA_F_NESTED)
    return _Pieces(set_name, element + key, first + key_end, last)


@functools.lru_cache(maxsize=4096)
def _pieces(version: int, destinations: tuple[Destination, ...]) -> tuple[_Pieces, ...]:
    # The same for every seat of one family with one destination list: a scope of 10,000 seats cuts its few
    # destination lists once (as nft.py's text does).
    length = 4 if version == 4 else 16
    pieces = [_element_pieces(f"seats{version}", length)]
    for proto, network, low, high in disjoint_boxes(version, destinations):
        first, last = network.network_address.packed, network.broadcast_address.packed
        if proto == "icmp":
            pieces.append(_element_pieces(f"icmp{version}", length, first, last))
        else:
            protocol = struct.pack("=B3x", _PROTOCOLS[proto])
            first_port, last_port = struct.pack(">H2x", low), struct.pack(">H2x", high)
            pieces.append(
                _element_pieces(f"allow{version}", length, first + protocol + first_port, last + protocol + last_port)
            )
    return tuple(pieces)


@functools.lru_cache(maxsize=1 << 17)
def _packed(seat: str) -> tuple[int, bytes]:
    # Cached: a whole first pass names the same 20,000 seats each life.
    address = seat_address(seat)
    return address.version, address.packed


def elements_by_set(scope: TunnelScope) -> dict[str, list[bytes]]:
    """Each seat's elements of ``scope`` as netlink attributes, by set name (validated first: a bad scope raises
    ScopeError and nothing is sent). Every element starts with its seat's address, as in ``nft.seat_elements``."""
    scope.validate()
    by_set: dict[str, list[bytes]] = {}
    # Seats share a few destination lists: each list's pieces are looked up once per family, by identity (hashing
    # a list of Destinations for the cache cost more than making the seat's elements).
    known: dict[tuple[int, int], tuple[_Pieces, ...]] = {}
    for seat, destinations in scope.seats.items():
        version, packed = _packed(seat)
        pieces = known.get((version, id(destinations)))
        if pieces is None:
            pieces = known[version, id(destinations)] = _pieces(version, tuple(destinations))
        for piece in pieces:
            by_set.setdefault(piece.set_name, []).append(piece.of(packed))
    return by_set


class SetElements:
    """Adds and deletes seats' elements in one namespace's ``inet sohogw`` table; the socket is opened inside the
    namespace once and kept (while the name stands for that namespace: ``KeptSocket``). One change at a time (the
    reconciler applies one pass at a time)."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self._socket = KeptSocket(netns)
        self._sequence = count(1)

    def change(self, removed: TunnelScope, added: TunnelScope) -> None:
        """Delete the ``removed`` seats' elements, then add the ``added`` ones, in one kernel transaction, leaving
        the table, its chains and every other seat as they are. Raises FirewallError when the kernel refuses any of
        it (an element to delete is not there, an added one overlaps another): nothing is then changed."""
        messages = [
            *self._messages(NFT_MSG_DELSETELEM, 0, elements_by_set(removed)),
            *self._messages(NFT_MSG_NEWSETELEM, NLM_F_CREATE, elements_by_set(added)),
        ]
        if not messages:
            return
        begin, end = self._batch_edge(NFNL_MSG_BATCH_BEGIN), self._batch_edge(NFNL_MSG_BATCH_END)
        batch = b"".join([begin, *(message for _, _, message in messages), end])
        try:
            sock = self._socket.get() or self._open()
            sock.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, len(batch) + 4096)
            sock.send(batch)  # the kernel runs the whole batch before send returns; its answers are then queued
            errors = self._answers(sock, {sequence: (verb, set_name) for sequence, (verb, set_name), _ in messages})
        except OSError as error:
            self.close()
            raise FirewallError(f"could not change the scope's set elements over netlink: {error}") from error
        if errors:
            self.close()  # whatever else the kernel may still queue is not read by the next change
            raise FirewallError(f"nftables refused the scope's elements: {'; '.join(errors)}")

    def close(self) -> None:
        self._socket.close()

    def _messages(
        self, kind: int, flags: int, by_set: dict[str, list[bytes]]
    ) -> Iterator[tuple[int, tuple[str, str], bytes]]:
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
                header = HEADER.pack(
                    HEADER.size + len(body), (NFNL_SUBSYS_NFTABLES << 8) | kind, NLM_F_REQUEST | NLM_F_ACK | flags,
                    sequence, 0,
                )  # fmt: skip
                yield sequence, (verb, set_name), header + body

    def _batch_edge(self, kind: int) -> bytes:
        body = struct.pack("=BB", socket.AF_UNSPEC, 0) + struct.pack(">H", NFNL_SUBSYS_NFTABLES)
        sequence = next(self._sequence) & 0xFFFFFFFF
        return HEADER.pack(HEADER.size + len(body), kind, NLM_F_REQUEST, sequence, 0) + body

    def _answers(self, sock: socket.socket, asked: Mapping[int, tuple[str, str]]) -> list[str]:
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
            f"{verb} in {set_name}: {os.strerror(-errno)}"
            for sequence, errno in answered.items()
            if errno
            for verb, set_name in [asked.get(sequence, ("commit", "the batch"))]
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
