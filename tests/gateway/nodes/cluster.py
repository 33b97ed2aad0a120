"""Gateway nodes as separate processes on one PostgreSQL: start them, wait until they beat, kill one whole."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.server import free_port

REPO = Path(__file__).parents[3]


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
    """Further ``SOHOGW_*`` variables every node gets (the proxy secret behind HAProxy)."""

    def start(self, name: str) -> NodeProcess:
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
        node = NodeProcess(name, f"http://127.0.0.1:{port}", process, log)
        self.nodes[name] = node
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(node.url + "/healthz", timeout=2).json()["node"] == name:
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
