"""The wire format of WireGuard's cross-platform userspace API (wireguard.com/xplatform), over its UNIX socket.

wireguard-go and boringtun listen on `/var/run/wireguard/IFNAME.sock`. A request is `get=1` or `set=1`
followed by `key=value` lines and an empty line; the answer ends with `errno=N` and an empty line, N negative
or non-zero on failure. Keys travel in hex, not the base64 that people and `wg` show. A `set=1` is one
transaction, so a whole reconcile (removals first, then additions) is a single request.
"""

import base64
import binascii
import functools
import itertools
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter, methodcaller
from pathlib import Path

from gateway.vpn.backend import PeerSpec, PeerState, WireGuardError, interned, normalise_cidr

SOCKET_DIR = Path("/var/run/wireguard")
_TIMEOUT_S = 30.0
_ERRNO_TAIL = 64
"""The closing ``errno=N`` line and the empty line after it fit in this many bytes."""
_LINES_PER_PART = 4096
"""About 800 peers' lines (~150 kB): small enough to keep wireguard-go busy from the first part on."""


def key_to_hex(key: str) -> str:
    """Base64 key (as `wg genkey` prints) → the 64 hex digits UAPI expects; refuses anything not 32 bytes."""
    try:
        # binascii directly: base64.b64decode spent most of a 10,000-peer request's key conversions checking its input
        raw = binascii.a2b_base64(key, strict_mode=True)
    except binascii.Error as exc:
        raise WireGuardError(f"not a base64 WireGuard key: {key!r}") from exc
    if len(raw) != 32:
        raise WireGuardError(f"a WireGuard key is 32 bytes, this one is {len(raw)}: {key!r}")
    return raw.hex()


@functools.lru_cache(maxsize=1 << 17)
def hex_to_key(hex_key: str) -> str:
    """UAPI hex key → base64, the form used everywhere else in the gateway (cached: the same keys every pass)."""
    return base64.b64encode(bytes.fromhex(hex_key)).decode()


@dataclass
class DeviceState:
    """What `get=1` reports: the interface's own settings and its peers."""

    private_key: str | None = None
    listen_port: int | None = None
    peers: dict[str, PeerState] = field(default_factory=dict)


def socket_path(name: str, socket_dir: Path = SOCKET_DIR) -> Path:
    return socket_dir / f"{name}.sock"


def answers(path: Path) -> bool:
    """True when something accepts connections on the UAPI socket (a killed daemon leaves a dead file)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def exchange(path: Path, request: str | Iterator[str]) -> bytes:
    """Send one request, whole or in parts sent as they are made; return the answer without its closing `errno`
    line; raise if errno is not 0.

    In parts: wireguard-go applies each line of a `set=1` as it reads it, so the next part of a 10,000-peer request
    is built while the daemon creates the peers of the previous one. Bytes, not lines, back: a `get=1` of 10,000
    peers is 3 MB, and the safety net reads only a few fields of it."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(_TIMEOUT_S)
        try:
            sock.connect(str(path))
            for part in [request] if isinstance(request, str) else request:
                sock.sendall(part.encode())
            chunks: list[bytes] = []
            tail = b""
            while not tail.endswith(b"\n\n"):
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
                tail = (tail + chunk[-2:])[-2:]  # not tail + chunk: that copied each ~200 kB chunk once more
        except OSError as exc:
            hint = "is wireguard-go running?"
            raise WireGuardError(f"WireGuard UAPI socket {path} did not answer ({exc}); {hint}") from exc
    # The errno line is the last: looked for in the last read alone (with the reads before it while that is shorter
    # than the line), cut off there, and the body joined once: 3 MB at 10,000 peers, joined and then cut again was
    # one more copy of it (and ~800 more page faults).
    last = chunks.pop() if chunks else b""
    while chunks and len(last) <= _ERRNO_TAIL:
        last = chunks.pop() + last
    errno_at = last.rfind(b"errno=", max(0, len(last) - _ERRNO_TAIL))
    errno_text = last[errno_at + len(b"errno=") :].rstrip(b"\n")
    if errno_at < 0 or last[errno_at - 1 : errno_at] not in (b"", b"\n") or not errno_text.lstrip(b"-").isdigit():
        raise WireGuardError(f"WireGuard UAPI socket {path} gave an incomplete answer: {last[-200:]!r}")
    errno = int(errno_text)
    if errno != 0:
        raise WireGuardError(f"WireGuard UAPI at {path} refused the request: errno={errno}")
    chunks.append(last[:errno_at])
    return b"".join(chunks)


def parse_get(answer: bytes) -> DeviceState:
    """Turn a `get=1` answer into a DeviceState; a `public_key=` line starts each peer."""
    device = DeviceState()
    peer: dict[str, str] | None = None
    allowed: list[str] = []
    for line in answer.decode().splitlines():
        key, _, value = line.partition("=")
        if key == "public_key":
            _add_peer(device, peer, allowed)
            peer, allowed = {"public_key": value}, []
        elif peer is not None and key == "allowed_ip":
            allowed.append(value)
        elif peer is not None:
            peer[key] = value
        elif key == "private_key":
            device.private_key = hex_to_key(value)
        elif key == "listen_port":
            device.listen_port = int(value)
    _add_peer(device, peer, allowed)
    return device


_KEEPALIVE = b"\npersistent_keepalive_interval="
_ALLOWED_IP = b"\nallowed_ip="
_ALLOWED_IP_NAME = b"allowed_ip"
"""Counted alone: it occurs only as a line's name (values are numbers, hex keys and addresses), and bytes.count finds
it in 3 MB twice as fast as the line's start with its newline and equals sign (~2 ms)."""


def parse_configs(answer: bytes, expected: Mapping[str, PeerSpec] | None = None) -> Mapping[str, PeerSpec]:
    """The peers' configuration from a `get=1` answer (keys, allowed IPs, keepalive), skipping the statistics:
    the comparison of a safety-net pass reads 10,000 peers and needs nothing else. The result is shared: nobody may
    change it.

    When the answer holds exactly ``expected`` (what the last pass installed: the safety net's common case), that
    very mapping is returned, found without a spec per peer (``_holds_exactly``). Otherwise: wireguard-go writes each
    peer's statistics first and its configuration last (keepalive, then the allowed IPs), so the answer's
    configuration is the set of its peers' (key, text from the keepalive line on): that set is cut out by splits that
    take no Python step per peer, and the configurations are parsed once per set. An answer whose peers are written
    in another order is parsed peer by peer."""
    blocks = _peer_blocks(answer)
    if expected is not None and _holds_exactly(answer, blocks, expected):
        return expected
    cut = list(map(bytes.partition, blocks, itertools.repeat(_KEEPALIVE)))
    statistics = list(map(_FIRST, cut))
    if all(map(_SECOND, cut)) and not any(map(methodcaller("count", _ALLOWED_IP), statistics)):
        return _configs_of(frozenset(zip(map(_KEY, statistics), map(_THIRD, cut), strict=True)))
    return {spec.public_key: spec for spec in map(_peer_config, blocks)}


def _holds_exactly(answer: bytes, blocks: list[bytes], expected: Mapping[str, PeerSpec]) -> bool:
    """Whether the answer's peers are exactly ``expected``'s: the same keys, and each peer's block ending with the
    keepalive and allowed IP lines that ``peer_lines`` sent for it (wireguard-go lists a peer's allowed IPs in the
    order they were added, after its keepalive). Every allowed IP line of the answer must be in one of those ends,
    so a line written elsewhere (another daemon's order, a peer given one more address) fails the check, and the
    answer is then parsed in full. A few passes over the bytes: ~5–8 ms at 10,000 peers, where building and comparing
    10,000 configurations took ~20."""
    ends, allowed_ips = _block_ends(expected)
    keys = list(map(_KEY, blocks))
    return (
        len(keys) == len(ends)
        and ends.keys() == set(keys)
        and all(map(bytes.endswith, blocks, map(ends.__getitem__, keys)))
        and answer.count(_ALLOWED_IP_NAME) == allowed_ips
    )


_last_ends: tuple[Mapping[str, PeerSpec], dict[bytes, bytes], int] | None = None
"""``_block_ends`` of the last expected configuration (safety-net passes expect the same one while nothing
changes; a process serves one interface, so one is enough)."""


def expect(expected: Mapping[str, PeerSpec]) -> None:
    """Make the block ends of ``expected`` ahead of the ``parse_configs`` that will be given it: ~5 ms at 10,000
    peers, which a full pass spends while wireguard-go creates its peers, and the safety-net pass after it then
    does not."""
    _block_ends(expected)


def _block_ends(expected: Mapping[str, PeerSpec]) -> tuple[dict[bytes, bytes], int]:
    """The end of each expected peer's block by hex key, and the number of allowed IP lines they hold."""
    global _last_ends
    last = _last_ends
    if last is not None and last[0] is expected:
        return last[1], last[2]
    ends = dict(map(_block_end, expected.values()))
    made = (expected, ends, sum(len(spec.allowed_ips) for spec in expected.values()))
    _last_ends = made
    return made[1], made[2]


@functools.lru_cache(maxsize=1 << 17)
def _block_end(spec: PeerSpec) -> tuple[bytes, bytes]:
    """A peer's hex key, and the last lines of its block as wireguard-go writes them once ``peer_lines`` set it."""
    allowed = "".join(f"\nallowed_ip={cidr}" for cidr in _allowed_ips_in_order(spec))
    end = f"\npersistent_keepalive_interval={spec.persistent_keepalive or 0}{allowed}"
    return key_to_hex(spec.public_key).encode(), end.encode()


def _peer_blocks(answer: bytes) -> list[bytes]:
    """Each peer's text, from its key (without ``public_key=``) to its last line (without the newline). The answer
    is split where it lies, not copied first: it is 3 MB at 10,000 peers."""
    blocks = answer.split(b"\npublic_key=")
    head = blocks.pop(0)
    if head.startswith(b"public_key="):  # no interface lines before the first peer
        blocks.insert(0, head.removeprefix(b"public_key="))
    if blocks:
        blocks[-1] = blocks[-1].rstrip(b"\n")
    return blocks


_FIRST, _SECOND, _THIRD, _KEY = itemgetter(0), itemgetter(1), itemgetter(2), itemgetter(slice(0, 64))


@functools.lru_cache(maxsize=4)
def _configs_of(peers: frozenset[tuple[bytes, bytes]]) -> dict[str, PeerSpec]:
    """The configurations of (hex key, text after ``persistent_keepalive_interval=``) pairs."""
    return {spec.public_key: spec for spec in (_peer_config(key + _KEEPALIVE + tail) for key, tail in peers)}


@functools.lru_cache(maxsize=1 << 17)
def _peer_config(block: bytes) -> PeerSpec:
    """One peer's block of a `get=1` answer (its key first) → its configuration; other lines are ignored."""
    lines = block.decode().split("\n")
    allowed: list[str] = []
    keepalive = 0
    for line in lines[1:]:
        name, _, value = line.partition("=")
        if name == "allowed_ip":
            allowed.append(value)
        elif name == "persistent_keepalive_interval":
            keepalive = int(value)
    return interned(PeerSpec(hex_to_key(lines[0]), frozenset(map(normalise_cidr, allowed)), keepalive or None))


def _add_peer(device: DeviceState, fields: dict[str, str] | None, allowed: list[str]) -> None:
    if fields is None:
        return
    seconds = int(fields.get("last_handshake_time_sec", "0"))
    keepalive = int(fields.get("persistent_keepalive_interval", "0"))
    state = PeerState(
        public_key=hex_to_key(fields["public_key"]),
        allowed_ips=frozenset(normalise_cidr(c) for c in allowed),
        endpoint=fields.get("endpoint"),
        latest_handshake=datetime.fromtimestamp(seconds, UTC) if seconds else None,
        rx_bytes=int(fields.get("rx_bytes", "0")),
        tx_bytes=int(fields.get("tx_bytes", "0")),
        persistent_keepalive=keepalive or None,
    )
    device.peers[state.public_key] = state


def peer_lines(peer: PeerSpec) -> list[str]:
    """Lines that create or fix one peer; allowed IPs replace the old ones, keepalive 0 switches it off. The key's hex
    is taken from the peer's ``_block_end``, which is made (and kept) here: the next safety-net pass then compares a
    peer a full pass created without encoding its key again (~1 µs a peer, done while wireguard-go creates them)."""
    lines = [f"public_key={_block_end(peer)[0].decode()}", "replace_allowed_ips=true"]
    lines += [f"allowed_ip={cidr}" for cidr in _allowed_ips_in_order(peer)]
    lines.append(f"persistent_keepalive_interval={peer.persistent_keepalive or 0}")
    return lines


def _allowed_ips_in_order(peer: PeerSpec) -> list[str]:
    """The order a peer's allowed IPs are sent in, and so listed back by wireguard-go."""
    return sorted(peer.allowed_ips)


def removal_lines(public_key: str) -> list[str]:
    return [f"public_key={key_to_hex(public_key)}", "remove=true"]


def set_request(lines: Iterable[str], begun: Callable[[], None] | None = None) -> Iterator[str]:
    """A `set=1` request in parts of ``_LINES_PER_PART`` lines (for ``exchange``), ``lines`` read as each is sent;
    ``begun`` runs once the first part of lines has been sent (the daemon is then busy with it)."""
    yield "set=1\n"
    remaining = iter(lines)
    while part := list(itertools.islice(remaining, _LINES_PER_PART)):
        yield "".join(f"{line}\n" for line in part)
        if begun is not None:
            begun()
            begun = None
    yield "\n"
