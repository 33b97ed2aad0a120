"""Gateway nodes as separate processes on one PostgreSQL: start them, wait until they beat, kill one whole; and a
real HAProxy in front of them running deploy/haproxy/haproxy.cfg as shipped, speaking TLS to them with its own
client certificate (``Hop``)."""

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.portal import PROXY_ENVIRONMENT
from tests.support.server import free_port

REPO = Path(__file__).parents[3]
HAPROXY_CONFIG = REPO / "deploy/haproxy/haproxy.cfg"
PEM = serialization.Encoding.PEM


@dataclass(frozen=True)
class Hop:
    """The TLS of the HAProxy → node hop: the nodes' certificate (HAProxy's ``ca-file``, it verifies the nodes with
    it) and the client certificate HAProxy presents to them (the nodes' ``portal.proxy_certificate_file``)."""

    node_cert: Path
    node_key: Path
    proxy_cert: Path
    proxy_pem: Path
    """HAProxy's certificate and key in one file, as its ``crt`` wants."""

    @classmethod
    def made_in(cls, directory: Path) -> "Hop":
        node_cert, node_key = self_signed(directory, "node")
        proxy_cert, _ = self_signed(directory, "haproxy-client")
        return cls(node_cert, node_key, proxy_cert, directory / "haproxy-client.pem")

    def node_settings(self) -> dict[str, str]:
        """A node's ``SOHOGW_*`` variables for serving the hop: TLS, and believing only HAProxy's certificate."""
        return {
            **PROXY_ENVIRONMENT,
            "SOHOGW_PORTAL__TLS_CERT_FILE": str(self.node_cert),
            "SOHOGW_PORTAL__TLS_KEY_FILE": str(self.node_key),
            "SOHOGW_PORTAL__PROXY_CERTIFICATE_FILE": str(self.proxy_cert),
        }


@dataclass
class NodeProcess:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    """The node's stdout and stderr."""

    def kill_whole_tree(self) -> None:
        """``kill -9`` of the node's process group: the node and anything it started die at once, unwarned."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


@dataclass
class Cluster:
    database_url: str
    data_root: Path
    heartbeat_seconds: float
    dead_after_seconds: float
    nodes: dict[str, NodeProcess] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)
    """Further ``SOHOGW_*`` variables every node gets (``behind_haproxy``'s among them)."""
    hop: Hop | None = None
    """Set by ``behind_haproxy``: the nodes then serve TLS to HAProxy."""

    def behind_haproxy(self) -> Hop:
        """Nodes started from now on serve HAProxy over TLS and believe its forwarding (secret, address and
        certificate)."""
        self.hop = Hop.made_in(self.data_root)
        self.settings.update(self.hop.node_settings())
        return self.hop

    def start(self, name: str, own: Mapping[str, str] | None = None) -> NodeProcess:
        """Start node ``name`` (its own settings ``own`` beside the cluster's) and wait until it answers."""
        port = free_port()
        environment = {
            **os.environ,
            "SOHOGW_DATABASE_URL": self.database_url,
            "SOHOGW_DATA_DIR": str(self.data_root / name),
            "SOHOGW_NODE_NAME": name,
            "SOHOGW_CLUSTER__HEARTBEAT_SECONDS": str(self.heartbeat_seconds),
            "SOHOGW_CLUSTER__DEAD_AFTER_SECONDS": str(self.dead_after_seconds),
            "SOHOGW_SEATS__ENABLED": "false",
            **self.settings,
            **(own or {}),
        }
        environment.pop("SOHOGW_CONFIG", None)
        log = self.data_root / f"{name}.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.gateway.nodes.node_process", str(port)],
            cwd=REPO,
            env=environment,
            start_new_session=True,  # its own process group, so a kill reaches its whole tree and nothing else
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        node = NodeProcess(name, f"{'https' if self.hop else 'http'}://127.0.0.1:{port}", process, log)
        self.nodes[name] = node
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(node.url + "/healthz", timeout=2, verify=False).json()["node"] == name:  # noqa: S501
                    return node
            except (httpx.HTTPError, ValueError):
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"node {name} did not start (exit code {process.poll()})")
            time.sleep(0.1)


@contextmanager
def cluster(
    database_url: str, data_root: Path, heartbeat_seconds: float, dead_after_seconds: float
) -> Iterator[Cluster]:
    """Nodes started with ``Cluster.start``; every one still running is stopped (SIGTERM, then SIGKILL) at the end."""
    running = Cluster(database_url, data_root, heartbeat_seconds, dead_after_seconds)
    try:
        yield running
    finally:
        for node in running.nodes.values():
            if node.process.poll() is None:
                os.killpg(node.process.pid, signal.SIGTERM)
                try:
                    node.process.wait(15)
                except subprocess.TimeoutExpired:
                    node.kill_whole_tree()


def self_signed(path: Path, name: str) -> tuple[Path, Path]:
    """A certificate and key (PEM files) for ``name``, and the two in one file as HAProxy wants."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (path / f"{name}.crt").write_bytes(certificate.public_bytes(PEM))
    (path / f"{name}.key").write_bytes(key_pem)
    (path / f"{name}.pem").write_bytes(certificate.public_bytes(PEM) + key_pem)
    return path / f"{name}.crt", path / f"{name}.key"


def wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def haproxy_admin(socket_path: Path, command: str) -> str:
    """One command on HAProxy's runtime API (``set server gateways/b state drain``), and its answer."""
    with socket.socket(socket.AF_UNIX) as connection:
        connection.connect(str(socket_path))
        connection.sendall(command.encode() + b"\n")
        return b"".join(iter(lambda: connection.recv(65536), b"")).decode()


def server_states(socket_path: Path) -> dict[str, str]:
    """HAProxy's own view of each server of the backend: its status column (UP, DOWN, DRAIN, MAINT) in ``show stat``."""
    states = {}
    for line in haproxy_admin(socket_path, "show stat").splitlines():
        fields = line.split(",")
        if len(fields) > 17 and fields[0] == "gateways" and fields[1] not in ("FRONTEND", "BACKEND"):
            states[fields[1]] = fields[17].split(" ")[0]
    return states


@contextmanager
def balancer(nodes: Cluster, scratch: Path, proxy_secret: str) -> Iterator[tuple[str, Path]]:
    """HAProxy in front of the cluster's first two nodes (its servers named as they are; started after
    ``Cluster.behind_haproxy``) until the block ends: its HTTPS URL and its admin socket, once it sees both nodes up."""
    assert nodes.hop is not None, "start the nodes after Cluster.behind_haproxy: HAProxy speaks TLS to them"
    first, second = list(nodes.nodes.values())[:2]
    servers = {node.name: node.url.removeprefix("https://") for node in (first, second)}
    with haproxy(servers, scratch, proxy_secret, nodes.hop) as running:
        yield running


@contextmanager
def haproxy(
    servers: Mapping[str, str], scratch: Path, proxy_secret: str, hop: Hop, config: Path = HAPROXY_CONFIG
) -> Iterator[tuple[str, Path]]:
    """HAProxy running ``config`` (the shipped file unless a test gives a variant) in front of two servers (name →
    address:port, serving TLS with ``hop``'s node certificate) until the block ends: its HTTPS URL and its admin
    socket, once it sees both up."""
    self_signed(scratch, "portal")
    self_signed(scratch, "client-ca")
    port, admin = free_port(), scratch / "admin.sock"
    (first, first_address), (second, second_address) = list(servers.items())[:2]
    environment = {
        **os.environ,
        "HAPROXY_BIND": f"127.0.0.1:{port}",
        "HAPROXY_TLS_PEM": str(scratch / "portal.pem"),
        "HAPROXY_CLIENT_CA": str(scratch / "client-ca.crt"),
        "HAPROXY_ADMIN_SOCKET": str(admin),
        "SOHOGW_PROXY_SECRET": proxy_secret,
        "SOHOGW_NODES_CA": str(hop.node_cert),
        "HAPROXY_NODE_CLIENT_PEM": str(hop.proxy_pem),
        "SOHOGW_NODE1": first_address,
        "SOHOGW_NODE2": second_address,
        "SOHOGW_NODE1_NAME": first,
        "SOHOGW_NODE2_NAME": second,
    }
    log = scratch / "haproxy.log"
    process = subprocess.Popen(
        ["haproxy", "-db", "-f", str(config)],
        env=environment,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        both_up = {first: "UP", second: "UP"}
        if not wait_until(lambda: server_states(admin) == both_up, 20):
            raise RuntimeError(f"HAProxy did not see both servers up: {log.read_text()}")
        yield f"https://127.0.0.1:{port}", admin
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(10)
