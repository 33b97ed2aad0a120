"""The wire format of WireGuard's cross-platform userspace API (wireguard.com/xplatform), over its UNIX socket.

wireguard-go and boringtun listen on `/var/run/wireguard/IFNAME.sock`. A request is `get=1` or `set=1`
followed by `key=value` lines and an empty line; the answer ends with `errno=N` and an empty line, N negative
or non-zero on failure. Keys travel in hex, not the base64 that people and `wg` show. A `set=1` is one
transaction, so a whole reconcile (removals first, then additions) is a single request.
"""

import base64
import binascii
import functools
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from gateway.vpn.backend import PeerSpec, PeerState, WireGuardError, normalise_cidr

SOCKET_DIR = Path("/var/run/wireguard")
_TIMEOUT_S = 30.0


def key_to_hex(key: str) -> str:
    """Base64 key (as `wg genkey` prints) → the 64 hex digits UAPI expects; refuses anything not 32 bytes."""
    try:
        raw = base64.b64decode(key, validate=True)
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


def exchange(path: Path, request: str) -> list[str]:
    """Send one request, return the answer's lines without the closing `errno`; raise if errno is not 0."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(_TIMEOUT_S)
        try:
            sock.connect(str(path))
            sock.sendall(request.encode())
            answer = b""
            while not answer.endswith(b"\n\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
        except OSError as exc:
            hint = "is wireguard-go running?"
            raise WireGuardError(f"WireGuard UAPI socket {path} did not answer ({exc}); {hint}") from exc
    lines = answer.decode().splitlines()
    while lines and not lines[-1]:
        lines.pop()
    if not lines or not lines[-1].startswith("errno="):
        raise WireGuardError(f"WireGuard UAPI socket {path} gave an incomplete answer: {answer[-200:]!r}")
    errno = int(lines[-1].partition("=")[2])
    if errno != 0:
        raise WireGuardError(f"WireGuard UAPI at {path} refused the request: errno={errno}")
    return lines[:-1]


def parse_get(lines: list[str]) -> DeviceState:
    """Turn a `get=1` answer into a DeviceState; a `public_key=` line starts each peer."""
    device = DeviceState()
    peer: dict[str, str] | None = None
    allowed: list[str] = []
    for line in lines:
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


def parse_configs(lines: list[str]) -> dict[str, PeerSpec]:
    """The peers' configuration from a `get=1` answer (keys, allowed IPs, keepalive), skipping the statistics:
    the comparison of a safety-net pass reads 10,000 peers and needs nothing else."""
    configs: dict[str, PeerSpec] = {}
    key: str | None = None
    allowed: list[str] = []
    keepalive = 0
    for line in lines:
        name, _, value = line.partition("=")
        if name == "public_key":
            if key is not None:
                configs[key] = PeerSpec(key, frozenset(map(normalise_cidr, allowed)), keepalive or None)
            key, allowed, keepalive = hex_to_key(value), [], 0
        elif key is None:
            continue
        elif name == "allowed_ip":
            allowed.append(value)
        elif name == "persistent_keepalive_interval":
            keepalive = int(value)
    if key is not None:
        configs[key] = PeerSpec(key, frozenset(map(normalise_cidr, allowed)), keepalive or None)
    return configs


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
    """Lines that create or fix one peer; allowed IPs replace the old ones, keepalive 0 switches it off."""
    lines = [f"public_key={key_to_hex(peer.public_key)}", "replace_allowed_ips=true"]
    lines += [f"allowed_ip={cidr}" for cidr in sorted(peer.allowed_ips)]
    lines.append(f"persistent_keepalive_interval={peer.persistent_keepalive or 0}")
    return lines


def removal_lines(public_key: str) -> list[str]:
    return [f"public_key={key_to_hex(public_key)}", "remove=true"]


def set_request(lines: list[str]) -> str:
    return "set=1\n" + "".join(f"{line}\n" for line in lines) + "\n"
