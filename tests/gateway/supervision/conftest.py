"""Supervision test fixtures: the portal with supervision mounted, a real SMTP server and an HTTP SMS gateway."""

import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope
from aiosmtpd.smtp import Session as SmtpSession
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlmodel import Session

from gateway.sessions.models import HomeSession, SessionState
from gateway.sessions.service import open_session
from gateway.supervision.deps import supervision_settings
from gateway.supervision.monitoring import ScreenViewer
from gateway.supervision.settings import SupervisionSettings
from policy import SupervisedTeams
from tests.gateway.sessions.conftest import PASSWORDS, WG_KEYS, Portal, csrf_of, sign_in
from tests.support.portal import serving_portal
from tests.support.server import free_port

EVERY_TEAM = SupervisedTeams(True, frozenset(), "test: every team")
"""The scope of a supervisor who sees everyone (a QA group, or a policy without team scope)."""
TEAMS = {"agent1": ["SOHO-Agents", "Team-North"], "agent2": ["SOHO-Agents", "Team-South"]}


SupervisedPortal = Portal
"""The portal its tests get: supervision's settings come from the ``supervision`` fixture, not from the portal."""


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[datetime, Message]] = []
        self.arrived = threading.Condition()

    async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: Envelope) -> str:
        with self.arrived:
            self.messages.append((datetime.now(UTC), message_from_bytes(envelope.content or b"")))
            self.arrived.notify_all()
        return "250 Message accepted for delivery"

    def wait_for(self, count: int, timeout: float) -> list[tuple[datetime, Message]]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.messages) >= count, timeout)
            return list(self.messages)


@dataclass
class SmtpServer:
    port: int
    inbox: _Inbox


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) on loopback that keeps what it receives."""
    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpServer(port, inbox)
    finally:
        controller.stop()


@dataclass
class SmsGateway:
    url: str
    received: list[tuple[datetime, dict[str, object], str]]
    status: list[int]
    """The status the gateway answers with (tests set ``status[0] = 500`` to see a refusal)."""


@pytest.fixture
def sms_gateway() -> Iterator[SmsGateway]:
    """An HTTP SMS gateway on loopback: records each JSON POST and its Authorization header."""
    received: list[tuple[datetime, dict[str, object], str]] = []
    status = [200]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            received.append((datetime.now(UTC), json.loads(body), self.headers.get("authorization", "")))
            self.send_response(status[0])
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield SmsGateway(f"http://127.0.0.1:{server.server_address[1]}/send", received, status)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def add_session(
    db: Session,
    login: str,
    *,
    created_at: datetime,
    roles: str = "agent",
    groups: list[str] | None = None,
    source_ip: str = "198.51.100.7",
    ended_at: datetime | None = None,
) -> HomeSession:
    """A home session row as a login makes it (ended when ``ended_at`` is given)."""
    session = HomeSession(
        id="",
        token_sha256="",
        csrf_token="",
        state=SessionState.ACTIVE,
        person_id=f"test:{login}",
        login=login,
        user_dn=f"cn={login}",
        display_name=login.title(),
        roles=roles,
        groups=json.dumps(groups if groups is not None else TEAMS.get(login, ["SOHO-Agents"])),
        policy_groups=json.dumps(groups if groups is not None else TEAMS.get(login, ["SOHO-Agents"])),
        source_ip=source_ip,
        created_at=created_at,
        last_seen_at=created_at,
        last_checked_at=created_at,
        idle_timeout_seconds=3600,
        expires_at=created_at + timedelta(hours=12),
    )
    open_session(db, session)
    if ended_at is not None:
        session.state, session.ended_at = SessionState.ENDED, ended_at
        db.add(session)
        db.flush()
    return session


@pytest.fixture
def supervision() -> SupervisionSettings:
    return SupervisionSettings(wall_tick_seconds=0.5)


@pytest.fixture
def screen_viewer() -> ScreenViewer | None:
    """What the wall's "watch" links to, given to the app as `create_app` takes it; None keeps the app's own (this
    node's seat broker, which these portals do not run). A test module overrides it with a stand-in."""
    return None


@contextmanager
def _viewing_with(app: FastAPI, viewer: ScreenViewer | None) -> Iterator[Mapping[str, Any]]:
    if viewer is not None:
        app.state.screen_viewer = viewer
    yield {}


@pytest.fixture
def portal(
    tmp_path: Path, db_url: str, engine: Engine, supervision: SupervisionSettings, screen_viewer: ScreenViewer | None
) -> Iterator[SupervisedPortal]:
    """The whole portal with supervision and /metrics mounted, agents in two teams."""
    groups = {"sup1": ["SOHO-Supervisors"], **TEAMS}
    with serving_portal(
        tmp_path,
        db_url,
        engine,
        kind=SupervisedPortal,
        passwords={login: PASSWORDS[login] for login in groups},
        groups=groups,
        certified=WG_KEYS,
        trusted_proxy=True,
        overrides={supervision_settings: lambda: supervision},
        alongside=lambda app: _viewing_with(app, screen_viewer),
    ) as running:
        yield running


@contextmanager
def signed_in(portal: Portal, login: str) -> Iterator[httpx.Client]:
    """A client holding ``login``'s session (agents present their certificate through the trusted proxy)."""
    with portal.client() as client:
        headers = portal.proxy_headers(login) if login in WG_KEYS else None
        answer = sign_in(client, login, headers=headers)
        assert answer.status_code == 303, answer.text
        yield client


def post_form(client: httpx.Client, page: str, action: str, **fields: str) -> httpx.Response:
    """Post a form the way the page's own form does, with the session's CSRF token from ``page``."""
    return client.post(action, data={"csrf": csrf_of(client.get(page)), **fields})
