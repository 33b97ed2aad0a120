"""The portal with the seat broker on a real socket: real X11 seats in a throw-away root, a movable clock.

Built by the shared portal builder (``tests/support/portal.py``); the seat folder adds the broker, the clock and the
set-up its browser tests share: a module-wide portal on SQLite, Chromium, agent1 signed in, the audit trail.
"""

import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, BrowserContext, Page
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from desktop_broker.pool import PooledSeat
from gateway.audit.models import AuditEvent
from gateway.db import make_engine
from gateway.migrate import upgrade
from gateway.seats.broker import SeatBroker, start_broker
from gateway.seats.models import SeatLease
from gateway.seats.settings import SeatSettings
from gateway.seats.workers import seat_workers
from gateway.sessions.deps import SESSION_COOKIE
from gateway.workers.runner import WorkerRunner
from tests.gateway.sessions.conftest import GROUPS, PASSWORDS, WG_KEYS, Portal, sign_in
from tests.support.clock import MovableClock
from tests.support.portal import csrf_of, serving_portal

TWO_APPS_POLICY = Path(__file__).with_name("two_apps_policy.yaml").read_text()
"""Two X11 apps: agents get the Customer Console only; the Supervisor Console is for supervisors."""


@dataclass
class SeatPortal(Portal):
    broker: SeatBroker
    clock: MovableClock

    @contextmanager
    def signed_in(self, login: str) -> Iterator[httpx.Client]:
        """A client holding `login`'s session cookie, signed in through the portal as a browser behind the proxy."""
        with self.client() as client:
            headers = self.proxy_headers(login) if login in self.certificates else None
            response = sign_in(client, login, PASSWORDS.get(login, login), headers=headers)  # more_agents: the login
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
    tmp_path: Path,
    db_url: str,
    engine: Engine,
    warm: int = 1,
    cap: int = 4,
    policy: str | None = None,
    more_agents: Mapping[str, str] | None = None,
    **seat_options: object,
) -> Iterator[SeatPortal]:
    """Everything from the sessions' portal fixture, plus the seat routes, noVNC and a started broker.

    ``policy`` (if given) is imported before the portal serves; ``more_agents`` adds agents (login → WireGuard key,
    password: the login); ``seat_options`` are further ``SeatSettings``.
    """
    more = dict(more_agents or {})
    clock = MovableClock()
    with seat_root() as root:
        seat_settings = SeatSettings(
            warm_per_app=warm,
            cap_per_node=cap,
            homes_root=root / "homes",
            runtime_root=root / "run",
            **seat_options,  # type: ignore[arg-type]
        )

        @contextmanager
        def broker_running(app: FastAPI) -> Iterator[Mapping[str, object]]:
            broker = start_broker(app, seat_settings)
            runner = WorkerRunner(seat_workers(broker), engine, clock)
            runner.start()
            try:
                yield {"broker": broker, "clock": clock}
            finally:
                runner.stop()

        with serving_portal(
            tmp_path,
            db_url,
            engine,
            kind=SeatPortal,
            passwords={**PASSWORDS, **{login: login for login in more}},
            groups={**GROUPS, **{login: ["SOHO-Agents"] for login in more}},
            certified={**WG_KEYS, **more},
            policy=policy,
            trusted_proxy=True,
            clock=clock,
            alongside=broker_running,
        ) as running:
            yield running


@contextmanager
def seat_portal_on_sqlite(tmp_path_factory: pytest.TempPathFactory, name: str, **options: Any) -> Iterator[SeatPortal]:
    """A seat portal over its own migrated SQLite file, for a module's worth of browser tests.

    The browser paths do not depend on the database; the token and lease rules run on both databases in
    test_launch_rules.py.
    """
    tmp = tmp_path_factory.mktemp(name)
    url = f"sqlite:///{tmp / 'sohogw.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        with seat_portal(tmp, url, engine, **options) as running:
            yield running
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def agent1(portal: SeatPortal) -> Iterator[httpx.Client]:
    with portal.signed_in("agent1") as client:
        yield client


def browser_context(
    portal: SeatPortal, browser: Browser, client: httpx.Client, height: int = 900, width: int = 1300
) -> BrowserContext:
    """A browser context holding ``client``'s session cookie for the portal."""
    context = browser.new_context(viewport={"width": width, "height": height})
    context.add_cookies([{"name": SESSION_COOKIE, "value": client.cookies[SESSION_COOKIE], "url": portal.base_url}])
    return context


def launch(client: httpx.Client, app_id: str = "customer-console") -> httpx.Response:
    """Launch ``app_id`` as the agent page's button does: a POST with the session's CSRF token."""
    page = client.get("/agent", headers={"accept": "text/html"})
    return client.post(f"/agent/apps/{app_id}/launch", data={"csrf": csrf_of(page)})


def launch_in_browser(page: Page, portal: SeatPortal, app_id: str = "customer-console") -> None:
    """Click ``app_id``'s button on the agent page, as a person does."""
    page.goto(portal.base_url + "/agent")
    page.click(f'li[data-app="{app_id}"] button')


def launch_token(client: httpx.Client) -> str:
    """The one-time token on a fresh Customer Console launch page."""
    return re.search(r'data-token="([^"]+)"', launch(client).text).group(1)  # type: ignore[union-attr]


def seat_of(portal: SeatPortal, login: str) -> PooledSeat:
    """The running seat of ``login``'s one and only lease."""
    with Session(portal.engine) as db:
        lease = db.exec(select(SeatLease).where(SeatLease.login == login)).one()
    seat = portal.broker.pool.get(lease.seat_id) if portal.broker.pool else None
    assert seat is not None, f"{login} holds no running seat"
    return seat


def audit_trail(portal: SeatPortal, action: str) -> list[AuditEvent]:
    """Every audit event of ``action``, oldest first."""
    with Session(portal.engine) as db:
        return list(db.exec(select(AuditEvent).where(AuditEvent.action == action).order_by(col(AuditEvent.seq))))
