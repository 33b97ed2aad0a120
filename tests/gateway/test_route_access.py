"""Every route of the real app, walked: who it admits and refuses, and that state changes need the CSRF token.

The expectations are one table (``route_access.ROUTES``); the routes come from ``create_app`` itself, so a route
added without a row fails ``test_every_route_has_a_row`` by name. Each caller signs in through the portal as a
person would (the agent with its certificate behind the proxy, the security admin with TOTP); the walk then sends
every route a request as every caller, with that caller's own CSRF token, and sorts the answers into "refused by the
access gate" (401/403 naming a sign-in, role or origin refusal; a websocket closed before it opens) and "passed the
gate" (anything else: the page, a 404 for the walk's made-up ids, a 422 for its empty form, a 503 for a part the
walk's portal runs without, such as the VPN). A caller that passes must not crash the route (no other 5xx).
"""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pyotp
import pytest
from fastapi import FastAPI
from fastapi.routing import APIWebSocketRoute, iter_route_contexts
from starlette.routing import Mount, WebSocketRoute
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from gateway.db import make_engine, session_scope
from gateway.seats.broker import start_broker
from gateway.seats.settings import SeatSettings
from gateway.sessions.deps import SESSION_COOKIE
from gateway.sessions.models import HomeSession, SessionState
from gateway.sessions.service import session_for_token
from tests.gateway.route_access import BROWSERS, CALLERS, ROUTES, Access, Csrf
from tests.support.clock import MovableClock
from tests.support.portal import (
    Portal,
    csrf_of,
    enrolment_code,
    passed_second_factor,
    redeem_enrolment_code,
    serving_portal,
    sign_in,
)
from tests.support.sqlite import copy_sqlite

PASSWORDS = {
    "agent1": "agent-one-pw",
    "sup1": "sup-one-pw",
    "admin1": "admin-one-pw",
    "admin2": "admin-two-pw",
    "hr1": "hr-one-pw",
}
GROUPS = {
    "agent1": ["SOHO-Agents"],
    "sup1": ["SOHO-Supervisors"],
    "admin1": ["SOHO-SecurityAdmins"],
    "admin2": ["SOHO-SecurityAdmins"],
    "hr1": ["SOHO-HR"],
}
PEOPLE = {
    "agent": "agent1",
    "supervisor": "sup1",
    "security_admin": "admin1",
    "hr": "hr1",
    "half_signed_admin": "admin2",
}
ACCESS_REFUSALS = {"login_required", "forbidden", "unauthenticated", "webhook_refused", "platform_refused"}
"""The error reasons of the access gates: no session, wrong role or origin, no valid signature."""
STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
TOTP_STEP = 30


def app_routes(app: FastAPI) -> dict[tuple[str, str], str]:
    """Every (method, path) the app serves, as the table keys it, with the endpoint's name for messages.

    HEAD is served with every GET and not listed apart; a websocket is "WEBSOCKET", a mount "MOUNT".
    """
    found: dict[tuple[str, str], str] = {}
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        path = context.path or ""
        if isinstance(route, Mount):
            found["MOUNT", path] = route.name or path
        elif isinstance(route, WebSocketRoute | APIWebSocketRoute):
            found["WEBSOCKET", path] = context.name or path
        elif context.methods:
            for method in sorted(context.methods - {"HEAD"}):
                found[method, path] = context.name or path
        else:  # a kind of route the walk does not know: it has no row, so the walk names it
            found[type(route).__name__, path] = context.name or path
    return found


def walk_path(path: str, access: Access) -> str:
    """The path the walk requests: the row's example, or each parameter filled with an id that does not exist."""
    return access.example or re.sub(r"\{[^}]+\}", "missing", path)


@dataclass
class Caller:
    """One caller's client (its cookies and headers) and, once signed in, its session's id."""

    name: str
    client: httpx.Client
    session_id: str | None = None


@dataclass
class WalkPortal(Portal):
    app: FastAPI


@contextmanager
def broker_without_seats(app: FastAPI) -> Iterator[dict[str, object]]:
    """The seat broker the websockets ask, with seats off: the walk opens no seat, it only knocks."""
    broker = start_broker(app, SeatSettings(enabled=False))
    try:
        yield {"app": app}
    finally:
        broker.stop()


@dataclass
class Walk:
    portal: WalkPortal
    clock: MovableClock
    callers: dict[str, Caller] = field(default_factory=dict)
    admin_totp: pyotp.TOTP | None = None

    def sign_in(self, caller: Caller) -> None:
        login = PEOPLE[caller.name]
        answer = sign_in(caller.client, login, PASSWORDS[login])
        assert answer.status_code == 303, answer.text
        if caller.name == "security_admin":
            self._second_factor(caller.client)
        caller.session_id = self._session_of(caller.client).id

    def _second_factor(self, client: httpx.Client) -> None:
        """Enrol on the first sign-in; later, move the clock to the next code (a code is good once)."""
        if self.admin_totp is None:  # a privileged first enrolment needs a one-time code from the host
            login = PEOPLE["security_admin"]
            code = enrolment_code(self.portal.engine, self.portal.directory, login, self.clock)
            assert redeem_enrolment_code(client, code).status_code == 303
        page = client.get("/login/second-factor", headers={"accept": "text/html"})
        if self.admin_totp is None:
            secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.text)
            assert secret, page.text
            self.admin_totp = pyotp.TOTP(secret.group(1))
        else:
            self.clock.advance(TOTP_STEP)
        code = self.admin_totp.at(self.clock())
        done = client.post("/login/second-factor", data={"code": code, "csrf": csrf_of(page)})
        assert passed_second_factor(done), done.text

    def _session_of(self, client: httpx.Client) -> HomeSession:
        with session_scope(self.portal.engine) as db:
            session = session_for_token(db, client.cookies.get(SESSION_COOKIE), self.clock())
            assert session is not None
            return session

    def caller(self, name: str) -> Caller:
        """The caller, signed in again first if a request of the walk ended its session (a sign-out does)."""
        caller = self.callers[name]
        if caller.session_id is not None:
            with session_scope(self.portal.engine) as db:
                session = db.get(HomeSession, caller.session_id)
                wanted = SessionState.PENDING_SECOND_FACTOR if name == "half_signed_admin" else SessionState.ACTIVE
                alive = session is not None and session.state is wanted
            if not alive:
                caller.client.cookies.clear()
                self.sign_in(caller)
        return caller

    def csrf_secret(self, caller: Caller) -> str:
        if caller.session_id is None:
            return ""
        with session_scope(self.portal.engine) as db:
            session = db.get(HomeSession, caller.session_id)
            return session.csrf_token if session else ""


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Walk]:
    """The whole app on SQLite (access gates do not depend on the engine), the seat broker with seats off, and a
    client per caller, each signed in through the portal; browsers come through the trusted proxy, each from its
    own address so that one caller's refused logins do not throttle another."""
    tmp = tmp_path_factory.mktemp("route-walk")
    url = copy_sqlite(sqlite_template, tmp / "sohogw.db")
    engine = make_engine(url)
    clock = MovableClock()

    try:
        with serving_portal(
            tmp,
            url,
            engine,
            kind=WalkPortal,
            passwords=PASSWORDS,
            groups=GROUPS,
            certified={"agent1": "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="},
            trusted_proxy=True,
            clock=clock,
            alongside=broker_without_seats,
        ) as portal:
            walk = Walk(portal, clock)
            for number, name in enumerate(CALLERS):
                client = portal.client()
                if name in BROWSERS:
                    forwarded = portal.proxy_headers("agent1") if name == "agent" else {}
                    client.headers.update({**forwarded, "X-Forwarded-For": f"198.51.100.{10 + number}"})
                walk.callers[name] = Caller(name, client)
                if name in PEOPLE:
                    walk.sign_in(walk.callers[name])
            try:
                yield walk
            finally:
                for caller in walk.callers.values():
                    caller.client.close()
    finally:
        engine.dispose()


@dataclass(frozen=True)
class Answer:
    status: int
    reason: str

    @property
    def refused_at_the_gate(self) -> bool:
        return self.status in (401, 403) and self.reason in ACCESS_REFUSALS

    def __str__(self) -> str:
        return f"{self.status} {self.reason}".strip()


def _reason(response: httpx.Response) -> str:
    if response.status_code not in (401, 403) or "json" not in response.headers.get("content-type", ""):
        return ""
    response.read()
    return str(response.json().get("error", ""))


def request(walk: Walk, name: str, method: str, path: str, access: Access, csrf: str | None) -> Answer:
    """One request as ``name``, carrying ``csrf`` where the route's check looks for it (None: no token at all).

    Streams are not read beyond their status (the wall's event stream never ends); error bodies are small.
    """
    caller = walk.caller(name)
    client = caller.client
    headers = {"accept": "application/json"}
    data: dict[str, str] | None = None
    no_token = {"note": "a form without the csrf field"}  # still URL-encoded: /login takes nothing else
    if access.csrf is Csrf.LOGIN_COOKIE:
        page = client.get("/login")
        data = {"csrf": csrf_of(page) if csrf == "right" else (csrf or "")} if csrf is not None else no_token
    elif access.csrf is Csrf.FORM or (access.csrf is None and method in STATE_CHANGING):
        data = {"csrf": _token(walk, caller, csrf)} if csrf is not None else no_token
    elif access.csrf is Csrf.HEADER and csrf is not None:
        headers["X-CSRF-Token"] = _token(walk, caller, csrf)
    if method == "MOUNT":
        method = "GET"
    built = client.build_request(method, walk_path(path, access), headers=headers, data=data)
    response = client.send(built, stream=True)
    try:
        return Answer(response.status_code, _reason(response))
    finally:
        response.close()


def _token(walk: Walk, caller: Caller, csrf: str) -> str:
    return walk.csrf_secret(caller) if csrf == "right" else csrf


def open_websocket(walk: Walk, name: str, path: str, token: str) -> Answer:
    """Open the websocket as ``name`` (its cookie and headers) with ``token``; a refusal closes it before it opens
    or as the first thing after; an admitted socket stays open for the next read."""
    caller = walk.caller(name)
    url = walk.portal.base_url.replace("http://", "ws://") + f"{path}?token={token}"
    cookie = caller.client.cookies.get(SESSION_COOKIE)
    headers = {key: value for key, value in caller.client.headers.items() if key.lower().startswith("x-")}
    if cookie:
        headers["Cookie"] = f"{SESSION_COOKIE}={cookie}"
    try:
        with connect(url, additional_headers=headers, open_timeout=10) as socket:
            try:
                socket.recv(timeout=10)
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else 1006
                return Answer(403, "forbidden") if code == 1008 else Answer(code, "closed")
            except TimeoutError:
                pass
            return Answer(101, "open")
    except InvalidStatus as refused:
        return Answer(refused.response.status_code, "forbidden")


def test_every_route_has_a_row(walk: Walk) -> None:
    """A route the table does not name has no stated access: the walk cannot vouch for it."""
    served = app_routes(walk.portal.app)
    unlisted = sorted(f"{method} {path} ({served[method, path]})" for method, path in served.keys() - ROUTES.keys())
    stale = sorted(f"{method} {path}" for method, path in ROUTES.keys() - served.keys())
    assert not unlisted, "routes with no row in tests/gateway/route_access.py ROUTES: " + ", ".join(unlisted)
    assert not stale, "rows in tests/gateway/route_access.py ROUTES for routes the app no longer serves: " + ", ".join(
        stale
    )


@pytest.mark.parametrize(("method", "path"), sorted(ROUTES), ids=[f"{m} {p}" for m, p in sorted(ROUTES)])
def test_route_admits_and_refuses_as_the_table_says(walk: Walk, method: str, path: str) -> None:
    access = ROUTES[method, path]
    wrong: list[str] = []
    for name in CALLERS:
        if method == "WEBSOCKET":
            answer = open_websocket(walk, name, walk_path(path, access), token="")
        else:
            answer = request(walk, name, method, path, access, csrf="right")
        admitted = not answer.refused_at_the_gate
        if admitted != (name in access.admits):
            expected = "admitted" if name in access.admits else "refused"
            wrong.append(f"{name}: expected {expected}, got {answer}")
        elif admitted and answer.status >= 500 and answer.status != 503:
            wrong.append(f"{name}: admitted but the route failed with {answer}")
    assert not wrong, f"{method} {path}: " + "; ".join(wrong)


def _state_changing() -> list[tuple[str, str]]:
    return sorted(key for key in ROUTES if key[0] in STATE_CHANGING)


@pytest.mark.parametrize(("method", "path"), _state_changing(), ids=[f"{m} {p}" for m, p in _state_changing()])
def test_state_changing_route_refuses_a_missing_or_wrong_csrf_token(walk: Walk, method: str, path: str) -> None:
    access = ROUTES[method, path]
    if access.csrf is None:
        assert access.csrf_exempt, f"{method} {path} changes state but its row names neither a CSRF check nor why not"
        return
    name = next(caller for caller in CALLERS if caller in access.admits)
    missing = request(walk, name, method, path, access, csrf=None)
    forged = request(walk, name, method, path, access, csrf="forged-token")
    right = request(walk, name, method, path, access, csrf="right")
    assert (missing.status, missing.reason) == (403, "csrf"), f"{method} {path} without a token: {missing}"
    assert (forged.status, forged.reason) == (403, "csrf"), f"{method} {path} with a forged token: {forged}"
    assert right.reason != "csrf" and not right.refused_at_the_gate, f"{method} {path} with the right token: {right}"
