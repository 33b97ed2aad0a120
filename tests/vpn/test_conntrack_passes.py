"""The open connections InstalledTunnel's passes cut, on real wireguard-go, nftables and conntrack in namespaces: a
connection held open from a home to the trust host, which echoes, goes on or stops as the passes leave its entry.

Each test holds two connections from home1, to a port its scope keeps (``KEPT``) and to one a narrower scope refuses
(``REFUSED``), then drives the passes; a fresh connection to ``KEPT`` tells that the tunnel carries packets again,
and each held connection is then asked for one echo."""

import errno
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from pyroute2 import Conntrack
from pyroute2.netlink.exceptions import NetlinkError

from gateway.vpn import conntrack
from gateway.vpn.backend import PeerChanges
from gateway.vpn.reconcile import DesiredPeer, InstalledTunnel, PeerPlan
from gateway.vpn.scope import Destination
from gateway.vpn.settings import VpnSettings
from tests.vpn.keys import key_pair
from tests.vpn.netns import ECHO_SERVER, NetnsLab
from tests.vpn.world import GATEWAY_PORT, Home, World, build

pytestmark = pytest.mark.e2e
TRUST = "172.30.0.2"
KEPT, REFUSED = 8081, 8082
WIDE = (Destination(f"{TRUST}/32", "tcp", KEPT), Destination(f"{TRUST}/32", "tcp", REFUSED))
NARROW = (Destination(f"{TRUST}/32", "tcp", KEPT),)
HELD = (
    "import signal, socket, sys\n"
    "held = [socket.create_connection((sys.argv[1], int(port)), timeout=5) for port in sys.argv[2:]]\n"
    "def exchange(*_):\n"
    "    answers = []\n"
    "    for peer in held:\n"
    "        peer.settimeout(1.5)\n"
    "        try:\n"
    "            peer.sendall(b'x')\n"
    "            answers.append('echoed' if peer.recv(1) == b'x' else 'closed')\n"
    "        except OSError:\n"
    "            answers.append('silent')\n"
    "    print(' '.join(answers), flush=True)\n"
    "signal.signal(signal.SIGUSR1, exchange)\n"
    "print('ready', flush=True)\n"
    "while True:\n"
    "    signal.pause()\n"
)
"""Connections held open to the ports named, silent until SIGUSR1: then one byte each way on each, and a line of
``echoed`` or ``silent`` in their order. Nothing is sent between two asks (while a peer is gone, say)."""


@pytest.fixture
def world(lab: NetnsLab) -> Iterator[World]:
    built = build(lab)
    try:
        for port in (KEPT, REFUSED):
            lab.spawn(built.trust, sys.executable, "-c", ECHO_SERVER, TRUST, str(port))
            assert _within(lambda port=port: built.reaches(built.trust, TRUST, port, 0.2), 10)  # type: ignore[misc]
        yield built
    finally:
        built.stop()


@pytest.fixture
def tunnel(world: World) -> Iterator[InstalledTunnel]:
    installed = InstalledTunnel(world.backend, VpnSettings(enabled=True, interface=world.interface, netns=world.gw))
    yield installed
    installed.close()


def _within(condition: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def _peer(home: Home, session: str, destinations: tuple[Destination, ...]) -> DesiredPeer:
    number = int(home.address.rsplit(".", 1)[1])
    return DesiredPeer(session, home.public_key, home.address, f"fd77::{number}", destinations)


def _carrying(world: World, home: Home) -> None:
    """Wait until a fresh connection from the home to ``KEPT`` gets through (a handshake may come first)."""
    assert _within(lambda: world.reaches(home.ns, TRUST, KEPT, 0.5), 10), "the tunnel carried nothing"


def _hold(world: World, home: Home) -> subprocess.Popen[bytes]:
    _carrying(world, home)
    held = world.lab.spawn(home.ns, sys.executable, "-c", HELD, TRUST, str(KEPT), str(REFUSED))
    assert held.stdout is not None and held.stdout.readline().strip() == b"ready"
    assert _ask(held) == "echoed echoed"
    return held


def _ask(held: subprocess.Popen[bytes]) -> str:
    """One echo on each held connection: ``echoed`` or ``silent``, ``KEPT``'s first."""
    assert held.stdout is not None
    held.send_signal(signal.SIGUSR1)
    return held.stdout.readline().decode().strip()


def _cuts_done(installed: InstalledTunnel) -> None:
    """The cuts the passes queued have run (the passes do not wait for them)."""
    installed._beside.submit(int).result()


def _handshake_again(world: World, home: Home, number: int) -> None:
    """The home's app starts a new handshake with its next packet: the gateway's new peer of the same key knows
    nothing of the old tunnel's keys, and the app would otherwise wait 15 s before it tried again."""
    gateway_key = world.lab.run(world.gw, "wg", "show", world.interface, "public-key").stdout.strip()
    world.lab.run(home.ns, "wg", "set", home.interface, "peer", gateway_key, "remove")
    world.lab.run(home.ns, "wg", "set", home.interface, "peer", gateway_key, "endpoint",
                  f"192.168.10{number}.1:{GATEWAY_PORT}", "allowed-ips", "10.77.0.0/16,172.30.0.0/24")  # fmt: skip


@pytest.mark.parametrize("gone_by", ["its session's end", "a full pass", "a full pass loading the table whole"])
def test_an_address_back_with_a_narrower_scope_in_a_later_pass_carries_none_of_the_old_tunnels_connections(
    world: World, tunnel: InstalledTunnel, gone_by: str
) -> None:
    """A person's session ends, and their next session (same address, in a group whose scope is narrower now) gets
    its peer in a later pass: no pass saw the seat's scope change, and the old tunnel's conntrack entries carried the
    refused connection on under the new peer (review of the conntrack cut, ct13)."""
    home, bystander = world.homes["home1"], world.homes["home2"]
    others = {bystander.public_key: _peer(bystander, "S3", WIDE)}
    tunnel.apply_all({home.public_key: _peer(home, "S1", WIDE), **others}, {})
    held = _hold(world, home)
    if gone_by == "its session's end":
        tunnel.apply_sessions(PeerPlan({}, frozenset({"S1"}), frozenset({home.public_key})))
    else:
        if gone_by == "a full pass loading the table whole":
            tunnel.peers = None  # as after a pass that failed, or a restart
        tunnel.apply_all(others, world.backend.peer_configs(world.interface))
    assert home.public_key not in world.backend.peers(world.interface)
    back = {home.public_key: _peer(home, "S2", NARROW)}
    tunnel.apply_sessions(PeerPlan(back, frozenset({"S2"}), frozenset(back)))
    _cuts_done(tunnel)
    _handshake_again(world, home, 1)
    _carrying(world, home)
    assert _ask(held) == "echoed silent"


@pytest.mark.parametrize("next_pass", ["an unchanged full pass", "another session's end"])
def test_a_whole_loads_cut_that_failed_is_made_by_the_next_pass(
    world: World,
    tunnel: InstalledTunnel,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    next_pass: str,
) -> None:
    home, other = world.homes["home1"], world.homes["home2"]
    others = {other.public_key: _peer(other, "S2", WIDE)}
    tunnel.apply_all({home.public_key: _peer(home, "S1", WIDE), **others}, {})
    held = _hold(world, home)
    real, failures = conntrack._cut_disallowed, []

    def fails_once(*args: object) -> int:
        if not failures:
            failures.append(True)
            raise NetlinkError(errno.ENOBUFS)  # as a dump the socket's buffer overflows answers
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(conntrack, "_cut_disallowed", fails_once)
    narrowed = {home.public_key: _peer(home, "S1", NARROW), **others}
    tunnel.peers = None  # the scope narrowed while the tunnel's state was unknown: the pass loads it whole
    with caplog.at_level(logging.ERROR, logger="gateway.vpn.reconcile"):
        tunnel.apply_all(narrowed, world.backend.peer_configs(world.interface))
        _cuts_done(tunnel)
    assert failures and "the next pass cuts again" in caplog.text
    assert _ask(held) == "echoed echoed"  # the failed cut left the refused connection open
    if next_pass == "an unchanged full pass":
        tunnel.apply_all(narrowed, world.backend.peer_configs(world.interface))
    else:
        tunnel.apply_sessions(PeerPlan({}, frozenset({"S2"}), frozenset(others)))
    _cuts_done(tunnel)
    assert _ask(held) == "echoed silent"


def test_the_whole_load_after_nft_refused_an_element_change_cuts_every_seat(
    world: World, tunnel: InstalledTunnel
) -> None:
    """Someone opened the tunnel by hand (a rule accepting everything from it) and deleted a seat's element: a seat
    not rescoped opened a connection its scope refuses, and the pass whose element change nft then refused loads the
    table whole; it cut only the rescoped seats' connections."""
    home, other = world.homes["home1"], world.homes["home2"]
    tunnel.apply_all({home.public_key: _peer(home, "S1", NARROW), other.public_key: _peer(other, "S2", NARROW)}, {})
    world.lab.run(world.gw, "nft", "insert", "rule", "inet", "sohogw", "from_tunnel", "accept")
    world.lab.run(world.gw, "nft", "delete", "element", "inet", "sohogw", "seats4", f"{{ {other.address} }}")
    held = _hold(world, home)
    tunnel.apply_sessions(PeerPlan({}, frozenset({"S2"}), frozenset({other.public_key})))
    _cuts_done(tunnel)
    assert _ask(held) == "echoed silent"


GATEWAY, PUSHED = "10.77.0.1", 8084
PUSH_SERVER = (
    "import socket, sys, threading, time\n"
    "server = socket.create_server((sys.argv[1], int(sys.argv[2])))\n"
    "def push(peer):\n"
    "    while True:\n"
    "        time.sleep(0.1)\n"
    "        peer.sendall(b'p')\n"
    "def echo(peer):\n"
    "    threading.Thread(target=push, args=(peer,), daemon=True).start()\n"
    "    for data in iter(lambda: peer.recv(64), b''):\n"
    "        peer.sendall(data.replace(b'p', b''))\n"
    "while True:\n"
    "    threading.Thread(target=echo, args=(server.accept()[0],), daemon=True).start()\n"
)
"""A service of the gateway's own that speaks unasked (a heartbeat every 0.1 s, as a WebSocket's or SSH's) and
echoes what it is sent."""
HELD_PUSHED = (
    "import signal, socket, sys, time\n"
    "peer = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)\n"
    "def exchange(*_):\n"
    "    peer.settimeout(1.5)\n"
    "    try:\n"
    "        peer.sendall(b'x')\n"
    "        deadline = time.monotonic() + 1.5\n"
    "        while b'x' not in peer.recv(64):\n"
    "            if time.monotonic() > deadline:\n"
    "                raise TimeoutError\n"
    "        print('echoed', flush=True)\n"
    "    except OSError:\n"
    "        print('silent', flush=True)\n"
    "signal.signal(signal.SIGUSR1, exchange)\n"
    "print('ready', flush=True)\n"
    "while True:\n"
    "    signal.pause()\n"
)


def test_a_connection_to_the_gateways_own_service_narrowed_away_stays_cut_though_the_service_speaks_first(
    world: World, tunnel: InstalledTunnel
) -> None:
    """The scope covers the gateway's own services too (the input hook). A cut connection's next packet from the
    service (its heartbeat) left the gateway unfiltered, and conntrack picked it up mid-stream as a new connection
    opened by the gateway's address, which no cut ever looks at: the home's packets were its replies, accepted as
    established, and the connection the scope refuses went on for good."""
    home = world.homes["home1"]
    world.lab.spawn(world.gw, sys.executable, "-c", PUSH_SERVER, GATEWAY, str(PUSHED))
    assert _within(lambda: world.reaches(world.gw, GATEWAY, PUSHED, 0.2), 10)
    tunnel.apply_all({home.public_key: _peer(home, "S1", (*NARROW, Destination(f"{GATEWAY}/32", "tcp", PUSHED)))}, {})
    _carrying(world, home)
    held = world.lab.spawn(home.ns, sys.executable, "-c", HELD_PUSHED, GATEWAY, str(PUSHED))
    assert held.stdout is not None and held.stdout.readline().strip() == b"ready"
    assert _ask(held) == "echoed"
    narrowed = {home.public_key: _peer(home, "S1", NARROW)}
    tunnel.apply_sessions(PeerPlan(narrowed, frozenset({"S1"}), frozenset(narrowed)))
    _cuts_done(tunnel)
    time.sleep(0.5)  # a few heartbeats
    assert _ask(held) == "silent"


SPOOF_GRE = (
    "import socket, struct, sys\n"
    "source, target = (socket.inet_aton(address) for address in sys.argv[1:3])\n"
    "header = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 24, 0, 0, 64, socket.IPPROTO_GRE, 0, source, target)\n"
    "raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)\n"
    "raw.sendto(header + struct.pack('!HH', 0, 0x0800), (sys.argv[2], 0))\n"
)
"""One GRE packet (RFC 1701, version 0) from a forged source address: the kernel fills in the IP header's sum."""


def _gre_entries(world: World) -> int:
    with Conntrack(nfgen_family=socket.AF_INET, netns=world.gw) as table:
        return sum(entry.tuple_orig.proto == socket.IPPROTO_GRE for entry in table.dump_entries())


def test_an_entry_of_a_pool_address_of_another_protocol_does_not_stop_every_cut(
    world: World, tunnel: InstalledTunnel, caplog: pytest.LogCaptureFixture
) -> None:
    """Anybody who reaches the gateway (here the trust host) makes an entry from an address of the pools with one
    forged packet of a protocol whose tuple has ports in the kernel but not in pyroute2's (GRE; SCTP, DCCP, UDP-Lite
    alike): the input hook leaves what does not come from the tunnel alone. Every cut after a whole load names it,
    its deletion without ports was refused (EINVAL), which ended the cut and owed another, refused the same way at
    every pass after: no cut was ever made again."""
    home, other = world.homes["home1"], world.homes["home2"]
    others = {other.public_key: _peer(other, "S2", WIDE)}
    tunnel.apply_all({home.public_key: _peer(home, "S1", WIDE), **others}, {})
    held = _hold(world, home)
    # such an entry outlives the table: one made before the gateway's life, when nothing dropped forged sources
    world.lab.run(world.gw, "nft", "flush", "chain", "inet", "sohogw", "prerouting")
    world.lab.run(world.trust, sys.executable, "-c", SPOOF_GRE, "10.77.0.99", "172.30.0.1")
    assert _gre_entries(world) == 1
    narrowed = {home.public_key: _peer(home, "S1", NARROW), **others}
    tunnel.peers = None  # the scope narrowed while the tunnel's state was unknown: the pass loads it whole
    with caplog.at_level(logging.ERROR, logger="gateway.vpn.reconcile"):
        tunnel.apply_all(narrowed, world.backend.peer_configs(world.interface))
        _cuts_done(tunnel)
        tunnel.apply_all(narrowed, world.backend.peer_configs(world.interface))
        _cuts_done(tunnel)
    assert "could not cut" not in caplog.text
    assert _gre_entries(world) == 0
    assert _ask(held) == "echoed silent"


def test_a_connection_a_seats_scope_refuses_cannot_be_opened_for_it_from_outside_the_tunnel(
    world: World, tunnel: InstalledTunnel
) -> None:
    """A host beside another interface of the gateway (here the home itself, on its underlay link) sends a SYN from
    a seat's address to a destination the seat's scope refuses: the forward hook let it through, as it did not come
    from the tunnel, and the server's SYN-ACK went into the tunnel as a reply, so the home carried on the connection
    as established (security review of cut14). The prerouting hook drops a source of the pools from any other
    interface."""
    home = world.homes["home1"]
    tunnel.apply_all({home.public_key: _peer(home, "S1", NARROW)}, {})
    _carrying(world, home)
    assert not world.reaches(home.ns, TRUST, REFUSED, 0.5)  # through the tunnel, the scope refuses it
    underlay = world.lab.run(home.ns, "ip", "-4", "route", "get", "192.168.101.1").stdout.split("dev ")[1].split()[0]
    # the SYN forged: its source the seat's address, out of the underlay link, the reply back through the tunnel
    world.lab.run(home.ns, "ip", "route", "add", f"{TRUST}/32", "via", "192.168.101.1", "dev", underlay,
                  "src", home.address)  # fmt: skip
    assert not world.reaches(home.ns, TRUST, REFUSED, 0.5)
    assert (
        world.lab.run(world.gw, "nft", "list", "chain", "inet", "sohogw", "prerouting").stdout.count("packets 0 ") == 2
    )  # the IPv4 pool's rule counted the forged SYNs, the IPv6 one and the route's nothing


def _entries_from(world: World, *sources: str) -> int:
    with Conntrack(nfgen_family=socket.AF_INET, netns=world.gw) as table:
        return sum(entry.tuple_orig.saddr in sources for entry in table.dump_entries())


def test_ends_queued_while_the_cutting_thread_is_busy_are_cut_in_one_dump(
    world: World, tunnel: InstalledTunnel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At a shift's end hundreds of sessions end within seconds: each end queued a whole dump of the conntrack table
    of its own, run one after the other, and a full pass adding peers waited behind them all (review of cut14). The
    ends waiting for the thread are cut together, in one dump, and none of them waits for it."""
    homes = [world.homes["home1"], world.homes["home2"]]
    others = {key: DesiredPeer(f"X{n}", key, f"10.77.1.{n}", f"fd77::1:{n}", WIDE) for n, key in
              ((n, key_pair()[1]) for n in range(2, 42))}  # fmt: skip
    tunnel.apply_all({home.public_key: _peer(home, f"S{n}", WIDE) for n, home in enumerate(homes, 1)} | others, {})
    for home in homes:
        _hold(world, home)
    assert _entries_from(world, *(home.address for home in homes)) >= 4  # the held ones, and the probes'
    dumps: list[int] = []
    dump = conntrack.Conntrack.dump

    def counted(table: Conntrack, *args: object, **kwargs: object) -> object:
        dumps.append(1)
        return dump(table, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(conntrack.Conntrack, "dump", counted)
    release = threading.Event()
    busy = tunnel._beside.submit(release.wait, 30)
    for session in ["S1", "S2", *(peer.session_id for peer in others.values())]:
        tunnel.apply_sessions(PeerPlan({}, frozenset({session})))
    assert not busy.done()  # every end's pass returned while the thread was held
    release.set()
    _cuts_done(tunnel)
    assert len(dumps) == 1
    assert _entries_from(world, *(home.address for home in homes)) == 0


def test_a_seat_routed_into_the_tunnel_outside_the_pools_cannot_be_forged_from_outside_either(world: World) -> None:
    """The pool narrowed (``vpn.pool4``) while leases made from the wider one still live: their seats keep their
    peers, and the gateway's own prefix (10.77.0.1/16) still routes their addresses into the tunnel. The prerouting
    hook dropped only a source of the pools, so a SYN forged with such a seat's address from another interface
    reached a destination its scope refuses, and the SYN-ACK went into the tunnel as a reply (review of cut14)."""
    narrowed = VpnSettings(enabled=True, interface=world.interface, netns=world.gw, pool4="10.77.0.0/31")
    installed = InstalledTunnel(world.backend, narrowed)
    try:
        home = world.homes["home1"]  # 10.77.0.2: outside 10.77.0.0/31, inside the gateway's 10.77.0.0/16
        installed.apply_all({home.public_key: _peer(home, "S1", NARROW)}, {})
        _carrying(world, home)
        assert not world.reaches(home.ns, TRUST, REFUSED, 0.5)
        underlay = (
            world.lab.run(home.ns, "ip", "-4", "route", "get", "192.168.101.1").stdout.split("dev ")[1].split()[0]
        )
        world.lab.run(home.ns, "ip", "route", "add", f"{TRUST}/32", "via", "192.168.101.1", "dev", underlay,
                      "src", home.address)  # fmt: skip
        assert not world.reaches(home.ns, TRUST, REFUSED, 0.5)
    finally:
        installed.close()


def test_an_address_outside_the_pools_back_after_a_whole_load_carries_none_of_the_old_tunnels_connections(
    world: World,
) -> None:
    """As above, the pool narrowed under the gateway's prefix and the person's address kept (``ipam.assign`` gives a
    person their own again): the whole load that removed the peer cut every connection of an address of the pools
    that is no seat, but not of this one, and the refused connection went on under the person's next peer, whose
    scope is narrower (review of cut14)."""
    narrowed = VpnSettings(enabled=True, interface=world.interface, netns=world.gw, pool4="10.77.0.0/31")
    installed = InstalledTunnel(world.backend, narrowed)
    try:
        home, bystander = world.homes["home1"], world.homes["home2"]
        others = {bystander.public_key: _peer(bystander, "S3", WIDE)}
        installed.apply_all({home.public_key: _peer(home, "S1", WIDE), **others}, {})
        held = _hold(world, home)
        installed.peers = None  # as after a pass that failed, or a restart
        installed.apply_all(others, world.backend.peer_configs(world.interface))
        assert home.public_key not in world.backend.peers(world.interface)
        back = {home.public_key: _peer(home, "S2", NARROW)}
        installed.apply_sessions(PeerPlan(back, frozenset({"S2"}), frozenset(back)))
        _cuts_done(installed)
        _handshake_again(world, home, 1)
        _carrying(world, home)
        assert _ask(held) == "echoed silent"
    finally:
        installed.close()


UDP_LISTENER = (
    "import socket, sys\n"
    "sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "sock.bind((sys.argv[1], int(sys.argv[2])))\n"
    "print('ready', flush=True)\n"
    "while True:\n"
    "    print(sock.recv(64).decode(), flush=True)\n"
)
RAW_INJECTION = (
    "import socket, struct, sys\n"
    "seat, gateway, port = sys.argv[1], sys.argv[2], int(sys.argv[3])\n"
    "answerer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "answerer.bind((gateway, 0))\n"
    "try:\n"
    "    answerer.sendto(b'unasked', (seat, port))\n"
    "    sys.exit('a new packet went into the tunnel')\n"
    "except PermissionError:  # new into the tunnel: the output hook drops it\n"
    "    pass\n"
    "source, target = socket.inet_aton(seat), socket.inet_aton(gateway)\n"
    "udp = struct.pack('!HHHH', port, answerer.getsockname()[1], 9, 0) + b'q'\n"
    "header = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 0, 0, 64, socket.IPPROTO_UDP, 0, source, target)\n"
    "raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)\n"
    "try:\n"
    "    raw.sendto(header + udp, (gateway, 0))  # the seat's address 'asks', over lo\n"
    "    answerer.sendto(b'injected', (seat, port))  # and this is its 'reply'\n"
    "except PermissionError:  # the output hook drops the first, and the second as new\n"
    "    pass\n"
)


def test_a_process_of_the_gateway_with_raw_sockets_alone_cannot_send_into_a_tunnel_unasked(
    world: World, tunnel: InstalledTunnel
) -> None:
    """The gateway's own services speak into the tunnel only in reply (the output hook). A process of the gateway
    that may open raw sockets (CAP_NET_RAW, as ping or a container's default capabilities have; not CAP_NET_ADMIN,
    which could change the table) sent a packet from a seat's address to a socket of its own on the gateway's
    address, over lo, where the prerouting hook lets a source of the pools by: conntrack took it for the seat's
    connection, and the socket's 'reply' went into the seat's tunnel (review of cut14)."""
    home = world.homes["home1"]
    tunnel.apply_all({home.public_key: _peer(home, "S1", WIDE)}, {})
    _carrying(world, home)
    listener = world.lab.spawn(home.ns, sys.executable, "-c", UDP_LISTENER, home.address, "9999")
    assert listener.stdout is not None and listener.stdout.readline().strip() == b"ready"
    done = world.lab.run(world.gw, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                         "--inh-caps=+net_raw", "--ambient-caps=+net_raw", "/usr/bin/python3", "-c", RAW_INJECTION,
                         home.address, GATEWAY, "9999", check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(listener.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(1.5)
    assert received == []


@pytest.mark.parametrize("wireguard_go", ["ended by the new life", "left running"])
def test_a_scope_narrowed_while_the_controller_was_killed_cuts_the_old_lifes_connections_after_the_restart(
    world: World, wireguard_go: str
) -> None:
    """kill -9 of the controller (its InstalledTunnel dropped without close, its table left in the kernel), the
    person's session ended and a new one in a narrower group meanwhile, then a new life (a new InstalledTunnel, nothing
    known, as the controller starts it): the refused connection of the old life is cut (review rev14)."""
    settings = VpnSettings(enabled=True, interface=world.interface, netns=world.gw)
    home, other = world.homes["home1"], world.homes["home2"]
    others = {other.public_key: _peer(other, "S3", WIDE)}
    dead = InstalledTunnel(world.backend, settings)
    try:
        dead.apply_all({home.public_key: _peer(home, "S1", WIDE), **others}, {})
        held = _hold(world, home)
    finally:
        dead._beside.shutdown(wait=True)  # killed: nothing of it runs any more (its sockets die with the process)
    # while down, the dead life's table still holds the seat with its wide scope: the held connections go on
    assert _ask(held) == "echoed echoed"
    if wireguard_go == "ended by the new life":
        world.backend.change(world.interface, PeerChanges(to_remove=list(world.backend.peer_configs(world.interface))))
    restarted = InstalledTunnel(world.backend, settings)
    try:
        live = world.backend.peer_configs(world.interface)
        restarted.load_scope_ahead(live)
        restarted.apply_all({home.public_key: _peer(home, "S2", NARROW), **others}, live)
        _cuts_done(restarted)
        if wireguard_go == "ended by the new life":
            _handshake_again(world, home, 1)
        _carrying(world, home)
        assert _ask(held) == "echoed silent"
        assert not world.reaches(home.ns, TRUST, REFUSED, 0.5)
    finally:
        restarted.close()
        dead.close()


def test_a_seat_added_while_a_whole_loads_cut_waits_keeps_the_connections_its_scope_allows(
    world: World, tunnel: InstalledTunnel
) -> None:
    """A whole load's cut (every address of the pools that is no seat of its pass) waits on the busy cutting thread;
    the next pass adds a seat, whose person opens connections their scope allows before the cut runs: the merged cut
    takes the seat for none and deletes their entries (logged: "cut 3"), but each connection's next packet from the
    home is judged new by the sets in force and allowed (review rev14)."""
    home, newcomer = world.homes["home1"], world.homes["home2"]
    tunnel.apply_all({home.public_key: _peer(home, "S1", WIDE)}, {})
    _cuts_done(tunnel)
    busy = threading.Event()
    tunnel._beside.submit(busy.wait, 30)
    try:
        tunnel.peers = None  # as after a failed pass: the next full pass loads the table whole and cuts every seat
        tunnel.apply_all({home.public_key: _peer(home, "S1", WIDE)}, world.backend.peer_configs(world.interface))
        coming = {newcomer.public_key: _peer(newcomer, "S2", WIDE)}
        tunnel.apply_sessions(PeerPlan(coming, frozenset({"S2"}), frozenset(coming)))
        held = _hold(world, newcomer)
    finally:
        busy.set()
    _cuts_done(tunnel)
    assert _ask(held) == "echoed echoed"
