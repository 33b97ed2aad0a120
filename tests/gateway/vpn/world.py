"""The whole certificate-bound VPN in namespaces: CA, portal, directory, controller, agents' WireGuard apps.

    home1 ─┐  underlay veths to 198.51.100.1 (the gateway's endpoint)    ┌─ trust 172.30.0.2:8081
    home2 ─┴──────────────────────────── gw ───────────────────────────────┘
    gw: VpnController (UapiBackend + wireguard-go, nft scope) and the gateway app over HTTPS on port 443.

People sign in as they do at home: from the home's namespace, over TLS to the gateway's endpoint, presenting the
certificate that binds their WireGuard key, with their directory password and a TOTP code (the world's policy asks
agents for one). The peer follows from what the portal did; nothing here writes a session row. Each home's app is
configured only from the config it downloads from the portal, the way wg-quick would apply it; then it widens its
own AllowedIPs (a home PC may), so that what it cannot reach is the gateway's scope at work.
"""

import json
import re
import ssl
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path

import httpx
import pyotp
import yaml
from cryptography.hazmat.primitives import serialization
from sqlalchemy import Engine
from sqlmodel import Session, select

from certs.authority import Authority, init_authority
from certs.server import issue_server_certificate
from gateway.app import create_app
from gateway.db import make_engine, session_scope
from gateway.directory import BuiltinDirectory
from gateway.pki.service import Actor, issue_agent_certificate, publication_urls
from gateway.policies.service import import_policy
from gateway.sessions.deps import SESSION_COOKIE
from gateway.sessions.models import HomeSession, SessionState
from gateway.sessions.service import session_for_token
from gateway.settings import Settings, load_settings
from gateway.vpn import nft
from gateway.vpn.client_config import PRIVATE_KEY_PLACEHOLDER
from gateway.vpn.controller import VpnController
from gateway.vpn.settings import VpnSettings
from gateway.vpn.uapi import UapiBackend
from gateway.vpn.workers import vpn_workers
from gateway.web.tls import tls_options
from gateway.workers.runner import WorkerRunner
from tests.support.clock import MovableClock
from tests.support.portal import csrf_of, passed_second_factor
from tests.support.server import serving
from tests.support.sqlite import copy_sqlite
from tests.vpn.keys import key_pair
from tests.vpn.netns import NetnsLab, inside
from tests.vpn.world import PROBE

PASSPHRASE = "vpn-e2e-passphrase"
PASSWORD = "Correct-Horse-42!"
ENDPOINT = "198.51.100.1"
PORTAL = ("10.77.0.1", 443)
TRUST = ("172.30.0.2", 8081)
WIDENED = "10.77.0.0/16,172.30.0.0/24"
DEFAULT_POLICY = Path(__file__).parents[3] / "policy" / "default_policy.yaml"
TOTP_STEP = 30


@dataclass
class Home:
    login: str
    ns: str
    interface: str
    private_key: str
    public_key: str
    client: UapiBackend
    certificate: tuple[Path, Path] = (Path(), Path())
    """The agent's certificate and key files, as the browser holds them."""
    cookies: httpx.Cookies = field(default_factory=httpx.Cookies)
    totp: pyotp.TOTP | None = None
    """The agent's authenticator, set at the first sign-in (the portal shows the enrolment secret once)."""
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
    clock: MovableClock
    ca_file: Path
    homes: dict[str, Home] = field(default_factory=dict)
    workers: WorkerRunner | None = None
    """The VPN's workers, run as the app runs them (nudged by sign-ins and sign-outs, and every second)."""

    def start_controller(self) -> None:
        self.controller.start()
        self.workers = WorkerRunner(vpn_workers(self.controller), self.engine)
        self.workers.start()

    def stop_controller(self) -> None:
        """Stops the workers, then the controller and the wireguard-go it started."""
        if self.workers is not None:
            self.workers.stop()
            self.workers = None
        self.controller.stop()

    def new_controller(self) -> VpnController:
        """A restarted gateway's controller (its first pass runs before this returns)."""
        self.stop_controller()
        self.controller = VpnController(self.engine, self.settings, self.data_dir)
        self.start_controller()
        return self.controller

    def certify(self, home: Home) -> None:
        """A fresh certificate binding the home's WireGuard key (as enrolment issues it), saved for its browser."""
        now = datetime.now(UTC)
        with session_scope(self.engine) as db:
            issued = issue_agent_certificate(
                db,
                self.authority,
                upn=f"{home.login}@corp.example",
                account=home.login,
                wireguard_key=home.public_key,
                person_id=None,
                actor=Actor("admin@corp.example"),
                now=now,
                lifetime=timedelta(days=1),
                urls=publication_urls(f"http://{ENDPOINT}"),
            )
        cert, key = self.data_dir / f"{home.login}.crt", self.data_dir / f"{home.login}.key"
        cert.write_bytes(issued.cert.public_bytes(serialization.Encoding.PEM))
        key.write_bytes(
            issued.key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        home.certificate = (cert, key)

    @contextmanager
    def browser(self, home: Home) -> Iterator[httpx.Client]:
        """The home's browser: from its namespace, over TLS to the endpoint, with its certificate and cookies."""
        tls = ssl.create_default_context(cafile=self.ca_file)
        tls.load_cert_chain(*home.certificate)
        base_url = f"https://{ENDPOINT}:{PORTAL[1]}"
        with inside(home.ns), httpx.Client(base_url=base_url, verify=tls, cookies=home.cookies, timeout=10) as client:
            yield client
            home.cookies = client.cookies

    def sign_in(self, home: Home, second_factor: bool = True) -> HomeSession:
        """Sign in at the portal with the certificate and password; then, unless told not to, the TOTP code."""
        with self.browser(home) as client:
            client.cookies.clear()
            page = client.get("/login")
            form = {"username": home.login, "password": PASSWORD, "csrf": csrf_of(page)}
            answer = client.post("/login", data=form, headers={"accept": "text/html"})
            assert answer.headers.get("location") == "/login/second-factor", answer.text
        if second_factor:
            self.second_factor(home)
        return self.session_of(home)

    def second_factor(self, home: Home) -> None:
        """Type the authenticator's code (enrolling at the first sign-in); a code is good once, so the portal's
        clock moves on to the next one first."""
        with self.browser(home) as client:
            page = client.get("/login/second-factor", headers={"accept": "text/html"})
            if home.totp is None:
                secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.text)
                assert secret, page.text
                home.totp = pyotp.TOTP(secret.group(1))
            self.clock.advance(TOTP_STEP)
            form = {"code": home.totp.at(self.clock()), "csrf": csrf_of(page)}
            answer = client.post("/login/second-factor", data=form, headers={"accept": "text/html"})
            assert passed_second_factor(answer), answer.text

    def sign_out(self, home: Home) -> None:
        with self.browser(home) as client:
            page = client.get("/agent", headers={"accept": "text/html"})
            answer = client.post("/logout", data={"csrf": csrf_of(page)}, headers={"accept": "text/html"})
            assert answer.headers.get("location") == "/login", answer.text

    def session_of(self, home: Home) -> HomeSession:
        """The session the home's cookie holds."""
        with session_scope(self.engine) as db:
            session = session_for_token(db, home.cookies.get(SESSION_COOKIE), self.clock())
            assert session is not None, f"{home.login}'s cookie holds no session"
            return session

    def end_all(self) -> None:
        """Every home signed out at the portal, its certificate renewed (a test may have revoked it), and its app
        switched off and on."""
        for home in self.homes.values():
            if self._live(home):
                self.sign_out(home)
            self.certify(home)
        assert self.wait(lambda: not self.peers(), 5), "peers stayed after every session ended"
        for home in self.homes.values():
            self.connect(home)

    def _live(self, home: Home) -> bool:
        with session_scope(self.engine) as db:
            session = session_for_token(db, home.cookies.get(SESSION_COOKIE), self.clock())
            return session is not None and session.state is SessionState.ACTIVE

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

    def scope_drops(self) -> int:
        """Packets from the tunnel the gateway's scope has dropped so far (the counters of its drop rules)."""
        listed = self.lab.run(self.gw, "nft", "-j", "list", "chain", *nft.TABLE.split(), "from_tunnel").stdout
        rules = [item["rule"] for item in json.loads(listed)["nftables"] if "rule" in item]
        return sum(
            expression["counter"]["packets"]
            for rule in rules
            if any("drop" in expression for expression in rule["expr"])
            for expression in rule["expr"]
            if "counter" in expression
        )

    def blocked(self, ns: str, target: tuple[str, int]) -> bool:
        """The connection fails and the gateway's scope counted the dropped packet: out of reach because the scope
        said no, not because a loaded machine was slow to answer within the probe's timeout."""
        before = self.scope_drops()
        if self.reaches(ns, target, 2.0):
            return False
        return self.wait(lambda: self.scope_drops() > before, 5)

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

    def sessions_of(self, home: Home) -> list[HomeSession]:
        with Session(self.engine) as db:
            return list(db.exec(select(HomeSession).where(HomeSession.login == home.login)))

    def stop(self) -> None:
        self.stop_controller()
        for home in self.homes.values():
            home.client.stop()


@contextmanager
def running_world(lab: NetnsLab, data_dir: Path, template: Path) -> Iterator[VpnWorld]:
    """The world, its portal serving from the gateway namespace until the block ends."""
    gw, trust = lab.add("gw"), lab.add("trust")
    lab.run(gw, "ip", "addr", "add", f"{ENDPOINT}/32", "dev", "lo")
    lab.link(gw, "172.30.0.1/24", trust, "172.30.0.2/24")
    lab.run(trust, "ip", "route", "add", "10.77.0.0/16", "via", "172.30.0.1")
    url = copy_sqlite(template, data_dir / "sohogw.db")
    settings = VpnSettings(
        enabled=True,
        interface=lab.name("wggw"),
        netns=gw,
        endpoint=f"{ENDPOINT}:51820",
        reconcile_seconds=1.0,
        private_key_file=data_dir / "wg.key",
    )
    loaded = load_settings(
        data_dir=data_dir, database_url=url, ca={"passphrase": PASSPHRASE}, public_url=f"https://{ENDPOINT}"
    )
    directory = BuiltinDirectory(loaded.directory_settings)
    engine = make_engine(url)
    authority = init_authority(loaded.ca_directory, PASSPHRASE, "Corp Example", datetime.now(UTC))
    controller = VpnController(engine, settings, data_dir)
    world = VpnWorld(
        lab, data_dir, gw, trust, engine, authority, directory, settings, controller, MovableClock(), Path()
    )
    try:
        world.start_controller()
        assert controller.off_reason is None, controller.off_reason
        _agents_need_totp(world)
        with _portal(world, loaded):
            lab.spawn(trust, sys.executable, "-m", "http.server", str(TRUST[1]), "--bind", TRUST[0], "--directory", "/")
            for number in (1, 2):
                _add_home(world, number)
            yield world
    finally:
        world.stop()
        engine.dispose()


def _agents_need_totp(world: VpnWorld) -> None:
    """The embedded default policy, with a second factor asked of agents too."""
    policy = yaml.safe_load(DEFAULT_POLICY.read_text())
    policy["roles"]["agent"] = {"require_totp": True}
    with session_scope(world.engine) as db:
        import_policy(db, yaml.safe_dump(policy), actor="test", source="vpn world", now=world.clock())


@contextmanager
def _portal(world: VpnWorld, settings: Settings) -> Iterator[None]:
    """The real gateway app over HTTPS in the gateway namespace, on all addresses (the endpoint for sign-in, the
    tunnel address once connected; all, so it survives the tunnel device being re-created by a restart)."""
    now = datetime.now(UTC)
    server = issue_server_certificate(world.authority, [], [ip_address(ENDPOINT), ip_address(PORTAL[0])], now)
    pem = serialization.Encoding.PEM
    world.ca_file = world.data_dir / "ca.pem"
    world.ca_file.write_bytes(world.authority.root_cert.public_bytes(pem))
    (world.data_dir / "server.crt").write_bytes(
        server.cert.public_bytes(pem) + world.authority.issuing_cert.public_bytes(pem)
    )
    (world.data_dir / "server.key").write_bytes(
        server.key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (world.data_dir / "client-cas.pem").write_bytes(
        world.authority.issuing_cert.public_bytes(pem) + world.authority.root_cert.public_bytes(pem)
    )
    tls = tls_options(world.data_dir / "server.crt", world.data_dir / "server.key", world.data_dir / "client-cas.pem")
    app = create_app(
        settings,
        engine=world.engine,
        clock=world.clock,
        authority=world.authority,
        directory=world.directory,
        run_jobs=False,
    )
    app.state.vpn = world.controller  # what the lifespan does when jobs run: the app's VPN is the world's
    host = "0.0.0.0"  # noqa: S104
    with serving(app, host=host, port=PORTAL[1], tls=tls, inside=lambda: inside(world.gw)):
        yield


def _add_home(world: VpnWorld, number: int) -> None:
    """A home namespace whose agent signs in and sets up the WireGuard app from the downloaded config."""
    lab = world.lab
    ns = lab.add(f"home{number}")
    lab.link(world.gw, f"192.168.10{number}.1/24", ns, f"192.168.10{number}.2/24")
    lab.run(ns, "ip", "route", "add", ENDPOINT, "via", f"192.168.10{number}.1")
    private, public = key_pair()
    home = Home(f"agent{number}", ns, lab.name(f"wgh{number}"), private, public, UapiBackend(netns=ns))
    world.homes[f"home{number}"] = home
    world.directory.add_user(home.login, PASSWORD, groups=["SOHO-Agents"])
    world.certify(home)
    world.sign_in(home)
    with world.browser(home) as client:
        download = client.get("/vpn/config")
        assert download.status_code == 200, download.text
        config = download.text
    fields = dict(line.split(" = ", 1) for line in config.splitlines() if " = " in line)
    addresses = [a.strip() for a in fields["Address"].split(",")]
    home.address = addresses[0].removesuffix("/32")
    home.client.ensure_interface(home.interface, private, 0, addresses)
    stripped = "\n".join(line for line in config.splitlines() if not line.startswith(("Address", "DNS")))
    home.client_conf = stripped.replace(PRIVATE_KEY_PLACEHOLDER, private)
    world.connect(home)
