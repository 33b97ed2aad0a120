"""A small world of namespaces for the end-to-end VPN tests.

    home1 (10.77.0.2) ─┐                        ┌─ trust 172.30.0.2 (HTTP on 8081 and 8082)
                        ├─ underlay veths ─ gw ─┤
    home2 (10.77.0.3) ─┘   192.168.10x.0/24     └─ veth 172.30.0.0/24
    gw: wireguard-go driven by UapiBackend, 10.77.0.1/16, HTTP on 10.77.0.1:8080; home2 serves 10.77.0.3:8083.

The homes are configured with `wg set` as a real client would be; the gateway only through our backend.
"""

import sys
import time
from dataclasses import dataclass, field

from gateway.vpn.backend import PeerSpec
from gateway.vpn.uapi import UapiBackend
from tests.vpn.keys import key_pair
from tests.vpn.netns import NetnsLab

GATEWAY_PORT = 51820
PROBE = (
    "import socket, sys\n"
    "try:\n"
    "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()\n"
    "except OSError:\n"
    "    sys.exit(1)\n"
)


@dataclass
class Home:
    ns: str
    interface: str
    address: str
    public_key: str

    def spec(self) -> PeerSpec:
        return PeerSpec.of(self.public_key, [f"{self.address}/32"])


@dataclass
class World:
    lab: NetnsLab
    gw: str
    trust: str
    interface: str
    backend: UapiBackend
    homes: dict[str, Home] = field(default_factory=dict)
    clients: list[UapiBackend] = field(default_factory=list)

    def stop(self) -> None:
        """Stop every supervised wireguard-go before the lab removes the namespaces (else they restart)."""
        for backend in [self.backend, *self.clients]:
            backend.stop()

    def desired(self, *names: str) -> dict[str, PeerSpec]:
        return {self.homes[n].public_key: self.homes[n].spec() for n in names}

    def reaches(self, ns: str, host: str, port: int, timeout: float = 1.0) -> bool:
        """True when a TCP connection from `ns` to host:port is accepted within `timeout` seconds."""
        done = self.lab.run(ns, sys.executable, "-c", PROBE, host, str(port), str(timeout), check=False)
        return done.returncode == 0

    def serve(self, ns: str, address: str, port: int) -> None:
        """An HTTP server (python -m http.server) bound to address:port inside `ns`, ready on return."""
        self.lab.spawn(ns, sys.executable, "-m", "http.server", str(port), "--bind", address, "--directory", "/")
        deadline = time.monotonic() + 10
        while not self.reaches(ns, address, port, 0.2):
            if time.monotonic() > deadline:
                raise RuntimeError(f"HTTP server on {address}:{port} in {ns} did not start")
            time.sleep(0.05)


def build(lab: NetnsLab) -> World:
    """Build the world; the caller stops it with `World.stop()`. A half-built world is stopped here."""
    gw, trust = lab.add("gw"), lab.add("trust")
    world = World(lab, gw, trust, lab.name("wggw"), UapiBackend(netns=gw))
    try:
        _populate(world)
    except BaseException:
        world.stop()
        raise
    return world


def _populate(world: World) -> None:
    lab, gw, trust = world.lab, world.gw, world.trust
    lab.link(gw, "172.30.0.1/24", trust, "172.30.0.2/24")
    lab.run(trust, "ip", "route", "add", "10.77.0.0/16", "via", "172.30.0.1")
    gw_private, gw_public = key_pair()
    world.backend.ensure_interface(world.interface, gw_private, GATEWAY_PORT, ["10.77.0.1/16"])
    for number in (1, 2):
        home = lab.add(f"home{number}")
        lab.link(gw, f"192.168.10{number}.1/24", home, f"192.168.10{number}.2/24")
        private, public = key_pair()
        interface = lab.name(f"wgh{number}")
        # the home side is an ordinary client: its own wireguard-go, configured with wg(8) like a user's app
        client = UapiBackend(netns=home)
        world.clients.append(client)
        client.ensure_interface(interface, private, 0, [f"10.77.0.{number + 1}/16"])
        world.homes[f"home{number}"] = Home(home, interface, f"10.77.0.{number + 1}", public)
        lab.run(home, "wg", "set", interface, "peer", gw_public, "endpoint", f"192.168.10{number}.1:{GATEWAY_PORT}",
                "allowed-ips", "10.77.0.0/16,172.30.0.0/24")  # fmt: skip
        lab.run(home, "ip", "route", "add", "172.30.0.0/24", "dev", interface)
