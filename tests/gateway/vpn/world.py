"""The whole certificate-bound VPN in namespaces: CA, sessions, controller, portal, agents' WireGuard apps.

    home1 ─┐  underlay veths to 198.51.100.1 (the gateway's endpoint)    ┌─ trust 172.30.0.2:8081
    home2 ─┴──────────────────────────── gw ───────────────────────────────┘
    gw: VpnController (UapiBackend + wireguard-go, nft scope), the gateway app (uvicorn) on port 443.

Each home is configured only from its `client_config` download, the way wg-quick would apply it; then it
widens its own AllowedIPs (a home PC may), so that what it cannot reach is the gateway's scope at work.
"""

import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session, select

from certs.authority import Authority, init_authority
from gateway.db import make_engine, session_scope
from gateway.directory import BuiltinDirectory, DirectorySettings
from gateway.migrate import upgrade
from gateway.pki.service import Actor, issue_agent_certificate, publication_urls
from gateway.sessions.models import EndReason, HomeSession, SessionState
from gateway.sessions.service import end_session, live_sessions
from gateway.vpn.client_config import PRIVATE_KEY_PLACEHOLDER
from gateway.vpn.controller import VpnController
from gateway.vpn.settings import VpnSettings
from gateway.vpn.uapi import UapiBackend
from tests.gateway.vpn.agents import agent_session
from tests.vpn.keys import key_pair
from tests.vpn.netns import NetnsLab
from tests.vpn.world import PROBE

PASSPHRASE = "vpn-e2e-passphrase"
PASSWORD = "Correct-Horse-42!"
ENDPOINT = "198.51.100.1"
PORTAL = ("10.77.0.1", 443)
TRUST = ("172.30.0.2", 8081)
WIDENED = "10.77.0.0/16,172.30.0.0/24"


@dataclass
class Home:
    login: str
    ns: str
    interface: str
    private_key: str
    public_key: str
    client: UapiBackend
    address: str = ""
    client_conf: str = ""
    """What the home's WireGuard app was given: the downloaded config, key filled in, addresses taken out."""


@dataclass
class VpnWorld:
    lab: NetnsLab
    data_dir: Path
    gw: str
    trust: str
    engine: Engine
    authority: Authority
    directory: BuiltinDirectory
    settings: VpnSettings
    controller: VpnController
    homes: dict[str, Home] = field(default_factory=dict)

    def new_controller(self) -> VpnController:
        self.controller = VpnController(self.engine, self.settings, self.data_dir)
        self.controller.start()
        return self.controller

    def sign_in(self, home: Home, state: SessionState = SessionState.ACTIVE) -> HomeSession:
        """A fresh certificate binding the home's WireGuard key, and a session opened with it (committed); the
        agent's previous session ends as "replaced", as `sessions.login` does."""
        now = datetime.now(UTC)
        with session_scope(self.engine) as db:
            for previous in live_sessions(db, home.login):
                end_session(db, previous, EndReason.REPLACED, actor=home.login, now=now)
            issued = issue_agent_certificate(
                db,
                self.authority,
                upn=f"{home.login}@corp.example",
                wireguard_key=home.public_key,
                actor=Actor("admin@corp.example"),
                now=now,
                lifetime=timedelta(days=1),
                urls=publication_urls("http://198.51.100.1"),
            )
            session, _ = agent_session(db, home.login, now, cert=issued.cert, state=state)
        return session

    def end_all(self) -> None:
        """Every session ended, and every home's app switched off and on (fresh tunnel keys, as after a logout)."""
        with session_scope(self.engine) as db:
            for session in live_sessions(db):
                end_session(db, session, EndReason.LOGOUT, actor=session.login, now=datetime.now(UTC))
        assert self.wait(lambda: not self.peers(), 5), "peers stayed after every session ended"
        for home in self.homes.values():
            self.connect(home)

    def connect(self, home: Home) -> None:
        """Load the home's config into its WireGuard app, then widen AllowedIPs beyond what it grants (a home PC
        can): whatever it still cannot reach is the gateway's scope at work."""
        gateway_key = self.controller.public_key or ""
        self.lab.run(home.ns, "wg", "set", home.interface, "peer", gateway_key, "remove")
        self.lab.run(home.ns, "wg", "setconf", home.interface, "/dev/stdin", stdin=home.client_conf)
        self.lab.run(home.ns, "wg", "set", home.interface, "peer", gateway_key, "allowed-ips", WIDENED)
        for network in WIDENED.split(","):
            self.lab.run(home.ns, "ip", "route", "replace", network, "dev", home.interface)

    def peers(self) -> set[str]:
        return set(self.controller.backend.peers(self.settings.interface))  # type: ignore[union-attr]

    def reaches(self, ns: str, target: tuple[str, int], timeout: float = 1.0) -> bool:
        done = self.lab.run(ns, sys.executable, "-c", PROBE, target[0], str(target[1]), str(timeout), check=False)
        return done.returncode == 0

    def reaches_within(self, ns: str, target: tuple[str, int], seconds: float) -> bool:
        """Reachable at some point within `seconds` (a client retries its handshake only every 5 s)."""
        return self.wait(lambda: self.reaches(ns, target, 0.5), seconds)

    @staticmethod
    def wait(condition: object, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if condition():  # type: ignore[operator]
                return True
            time.sleep(0.02)
        return False

    def session_of(self, home: Home) -> HomeSession:
        with Session(self.engine) as db:
            return db.exec(
                select(HomeSession).where(HomeSession.login == home.login, HomeSession.state == SessionState.ACTIVE)
            ).one()

    def stop(self) -> None:
        self.controller.stop()
        for home in self.homes.values():
            home.client.stop()


def build(lab: NetnsLab, data_dir: Path) -> VpnWorld:
    gw, trust = lab.add("gw"), lab.add("trust")
    lab.run(gw, "ip", "addr", "add", f"{ENDPOINT}/32", "dev", "lo")
    lab.link(gw, "172.30.0.1/24", trust, "172.30.0.2/24")
    lab.run(trust, "ip", "route", "add", "10.77.0.0/16", "via", "172.30.0.1")
    url = f"sqlite:///{data_dir / 'sohogw.db'}"
    upgrade(url)
    settings = VpnSettings(
        enabled=True,
        interface=lab.name("wggw"),
        netns=gw,
        endpoint=f"{ENDPOINT}:51820",
        reconcile_seconds=1.0,
        private_key_file=data_dir / "wg.key",
    )
    directory = BuiltinDirectory(DirectorySettings(kind="builtin", builtin_file=data_dir / "directory.json"))
    engine = make_engine(url)
    authority = init_authority(data_dir / "ca", PASSPHRASE, "Corp Example", datetime.now(UTC))
    controller = VpnController(engine, settings, data_dir)
    world = VpnWorld(lab, data_dir, gw, trust, engine, authority, directory, settings, controller)
    try:
        controller.start()
        assert controller.off_reason is None, controller.off_reason
        _serve_portal(world, url)
        lab.spawn(trust, sys.executable, "-m", "http.server", str(TRUST[1]), "--bind", TRUST[0], "--directory", "/")
        for number in (1, 2):
            _add_home(world, number)
    except BaseException:
        world.stop()
        raise
    return world


def _serve_portal(world: VpnWorld, url: str) -> None:
    """The real gateway app under uvicorn inside the gateway namespace (all addresses, so it survives the
    tunnel device being re-created by a wireguard-go restart)."""
    env = [f"SOHOGW_DATA_DIR={world.data_dir}", f"SOHOGW_DATABASE_URL={url}", f"SOHOGW_CA__PASSPHRASE={PASSPHRASE}"]
    command = [sys.executable, "-m", "uvicorn", "--factory", "gateway.app:create_app", "--host", "0.0.0.0"]  # noqa: S104
    world.lab.spawn(world.gw, "env", *env, *command, "--port", str(PORTAL[1]), "--log-level", "warning")
    if not world.wait(lambda: world.reaches(world.gw, PORTAL, 0.2), 20):
        raise RuntimeError("the gateway app did not start inside the gateway namespace")


def _add_home(world: VpnWorld, number: int) -> None:
    """A home namespace whose WireGuard app is set up from the downloaded config, as wg-quick would."""
    lab = world.lab
    ns = lab.add(f"home{number}")
    lab.link(world.gw, f"192.168.10{number}.1/24", ns, f"192.168.10{number}.2/24")
    lab.run(ns, "ip", "route", "add", ENDPOINT, "via", f"192.168.10{number}.1")
    private, public = key_pair()
    home = Home(f"agent{number}", ns, lab.name(f"wgh{number}"), private, public, UapiBackend(netns=ns))
    world.homes[f"home{number}"] = home
    world.directory.add_user(home.login, PASSWORD, groups=["SOHO-Agents"])
    session = world.sign_in(home)
    config = world.controller.client_config(session)
    fields = dict(line.split(" = ", 1) for line in config.splitlines() if " = " in line)
    addresses = [a.strip() for a in fields["Address"].split(",")]
    home.address = addresses[0].removesuffix("/32")
    home.client.ensure_interface(home.interface, private, 0, addresses)
    stripped = "\n".join(line for line in config.splitlines() if not line.startswith(("Address", "DNS")))
    home.client_conf = stripped.replace(PRIVATE_KEY_PLACEHOLDER, private)
    world.connect(home)
