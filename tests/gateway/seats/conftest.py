"""The portal with the seat broker on a real socket: real X11 seats in a throw-away root, a movable clock."""

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import Engine

from certs.authority import Authority, init_authority
from gateway.app import create_app
from gateway.db import session_scope
from gateway.directory import BuiltinDirectory
from gateway.pki import service as pki
from gateway.seats.broker import SeatBroker, start_broker
from gateway.seats.settings import SeatSettings
from gateway.settings import load_settings
from tests.gateway.sessions.conftest import GROUPS, PASSWORDS, WG_KEYS, Portal, sign_in
from tests.support.server import serving


class MovableClock:
    """Real time plus an offset the test moves forward: the gateway's one injected clock."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@dataclass
class SeatPortal(Portal):
    broker: SeatBroker
    clock: MovableClock

    @contextmanager
    def signed_in(self, login: str) -> Iterator[httpx.Client]:
        """A client holding `login`'s session cookie, signed in through the portal as a browser behind the proxy."""
        with self.client() as client:
            headers = self.proxy_headers(login) if login in self.certificates else None
            response = sign_in(client, login, headers=headers)
            assert response.status_code == 303, response.text
            client.headers.update(headers or {})
            yield client


@contextmanager
def seat_root() -> Iterator[Path]:
    """Homes and runtime dirs for seats; the seat users must traverse it (0755)."""
    root = Path(tempfile.mkdtemp(prefix="sohogw-seats-", dir="/var/tmp"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def seat_portal(
    tmp_path: Path, db_url: str, engine: Engine, warm: int = 1, cap: int = 4, **seat_options: object
) -> Iterator[SeatPortal]:
    """Everything from the sessions' portal fixture, plus the seat routes, noVNC and a started broker."""
    settings = load_settings(
        data_dir=tmp_path,
        database_url=db_url,
        ca={"passphrase": "seat-test"},
        portal={"trusted_proxies": ["127.0.0.1/32"]},
    )
    clock = MovableClock()
    now = clock()
    authority: Authority = init_authority(settings.ca_directory, "seat-test", "Corp Example", now)
    directory = BuiltinDirectory(settings.directory_settings)
    for login, password in PASSWORDS.items():
        directory.add_user(login, password, groups=GROUPS[login], display_name=login.title())
    certificates = {}
    with session_scope(engine) as db:
        for login, key in WG_KEYS.items():
            issued = pki.issue_agent_certificate(
                db,
                authority,
                upn=f"{login}@corp.example",
                account=login,
                wireguard_key=key,
                actor=pki.Actor("test"),
                now=now,
                lifetime=timedelta(days=7),
                urls=pki.publication_urls("http://x"),
            )
            certificates[login] = issued.cert
    app = create_app(settings, engine=engine, clock=clock, authority=authority, directory=directory, run_jobs=False)
    with seat_root() as root:
        seat_settings = SeatSettings(
            warm_per_app=warm,
            cap_per_node=cap,
            homes_root=root / "homes",
            runtime_root=root / "run",
            **seat_options,  # type: ignore[arg-type]
        )
        broker = start_broker(app, seat_settings)
        try:
            with serving(app) as base_url:
                yield SeatPortal(settings, engine, authority, directory, base_url, certificates, broker, clock)
        finally:
            broker.stop()
