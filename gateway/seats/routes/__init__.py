"""The seat page, its websocket (the broker's gate in front of the pixels), and noVNC's and
guacamole-common-js's files from one origin (the gateway).

`router` also carries the loopback routes guacamole-lite's server.js calls (`routes/internal.py`).
"""

import logging
from datetime import UTC, datetime
from pathlib import Path

from anyio import from_thread
from fastapi import APIRouter, FastAPI, Request, WebSocket
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from desktop_broker.x11 import RfbAddress
from gateway.db import session_scope
from gateway.deps import ClockDep, DbSession
from gateway.errors import GatewayError, NotFound
from gateway.seats import service
from gateway.seats.broker import SeatBroker
from gateway.seats.errors import LaunchRefused
from gateway.seats.models import SeatLease
from gateway.seats.prepared_rfb import PreparedSeatConnections
from gateway.seats.rfb_socket import STREAM_ENDED, accept_browser, bridge_to_seat
from gateway.seats.routes.internal import router as internal_router
from gateway.seats.tokens import spend
from gateway.seats.viewer_assets import IMMUTABLE, VIEWER_PATH, attach_seat_viewer, seat_viewer
from gateway.sessions.client_cert import client_address
from gateway.sessions.deps import SESSION_COOKIE, AgentSession, CheckedForm, ScriptCsrf
from gateway.sessions.models import HomeSession, SessionState
from gateway.sessions.service import session_for_token
from gateway.web.forms import refusal_message
from gateway.web.pages import render
from policy.rules import DisplayRules

log = logging.getLogger(__name__)
NOVNC_DIR = Path("/usr/share/novnc")
POLICY_VIOLATION = 1008  # RFC 6455 §7.4.1
GUACAMOLE_SCREEN = (1280, 800)
"""The remote desktop's size, as the X11 seats' (server.js passes only numeric width/height on)."""

router = APIRouter(tags=["seats"])
router.include_router(internal_router)


def mount_novnc(app: FastAPI) -> None:
    """Serve Debian's noVNC at /novnc and its bundle at /seats/viewer: one origin for every seat (FIELD_NOTES: no
    per-seat websockify)."""
    app.mount("/novnc", StaticFiles(directory=NOVNC_DIR), name="novnc")
    attach_seat_viewer(app, app.state.settings.seats.seat_viewer_dir)


@router.get(VIEWER_PATH + "/{name}", include_in_schema=False)
def seat_viewer_bundle(name: str, request: Request) -> FileResponse:
    """The noVNC bundle under its content-hashed name, cached for good (`viewer_assets`); any other name is 404."""
    bundle = seat_viewer(request).bundle
    if bundle is None or name != bundle.name:
        raise NotFound("no such seat viewer file")
    return FileResponse(bundle, media_type="text/javascript", headers={"Cache-Control": IMMUTABLE})


@router.get("/guacamole-js/guacamole-common.js", include_in_schema=False)
def guacamole_common_js(request: Request) -> FileResponse:
    """guacamole-common-js's ES module (one self-contained file), read from guacamole-lite's node_modules
    (`seats.guacamole_js_dir`): the same origin as the page, and exactly the version server.js's lock file
    pins. Nothing is copied and nothing needs mounting."""
    path = _broker(request).settings.guacamole_js_dir / "guacamole-common.js"
    if not path.is_file():
        raise NotFound(f"guacamole-common-js is not installed at {path.parent}: run npm ci in deploy/guacamole-lite")
    return FileResponse(path, media_type="text/javascript")


def _broker(request: Request | WebSocket) -> SeatBroker:
    return request.app.state.seat_broker  # type: ignore[no-any-return]


@router.post("/agent/apps/{app_id}/launch", response_class=HTMLResponse)
def launch_page(
    app_id: str, request: Request, session: AgentSession, form: CheckedForm, db: DbSession, clock: ClockDep
) -> HTMLResponse:
    """One click from the portal: a seat with the app, and a page that opens it with a one-time token.

    A POST carrying the session's CSRF token, because it changes state (a seat is leased, a token minted): as a GET,
    any page the agent visited could make her browser lease seats (an <img> would do)."""
    return seat_page(request, db, session, app_id, clock())


def seat_page(
    request: Request, db: Session, session: HomeSession, app_id: str, now: datetime, shown_as: str | None = None
) -> HTMLResponse:
    """Launch `app_id` for the session and answer with the page that opens it (or says why not).

    Only for a POST of our own pages: the launch button's (CSRF-checked) or a sign-in that lands on the person's only
    app (`seats.open_only_app`, gateway/web/routes.py). `shown_as` is the address the page puts in the address bar
    instead of the POST's own, so that a reload asks for that page and never posts the form again."""
    try:
        launched = service.launch(db, session, app_id, now, _broker(request))
    except GatewayError as error:  # refusals are audited; returning (not raising) lets that row commit
        return render(
            request,
            "seat_refused.html",
            error.status_code,
            session=session,
            reason=error.reason,
            detail=error.message,
            shown_as=shown_as,
        )
    watermark = f"{session.login} · {now.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    if launched.lease.backend == "guacamole":
        return render(
            request,
            "seat_guacamole.html",
            session=session,
            app_id=app_id,
            token=launched.token,
            websocket_url=_broker(request).settings.guacamole_websocket_url,
            width=GUACAMOLE_SCREEN[0],
            height=GUACAMOLE_SCREEN[1],
            watermark=watermark,
            break_reasons=request.app.state.break_reasons,
            shown_as=shown_as,
        )
    _prepare_seat_connection(request, launched.lease)
    return render(
        request,
        "seat_launch.html",
        session=session,
        app_id=app_id,
        token=launched.token,
        clipboard_out=_clipboard_out(request, launched.lease),
        watermark=watermark,
        viewer=seat_viewer(request),
        break_reasons=request.app.state.break_reasons,  # supervision's, given by the app (it sits above seats)
        shown_as=shown_as,
    )


def _prepared(app: FastAPI) -> PreparedSeatConnections:
    """The app's prepared seat connections (made on first use, on the event loop, which alone touches them)."""
    if not hasattr(app.state, "prepared_seat_connections"):
        app.state.prepared_seat_connections = PreparedSeatConnections()
    return app.state.prepared_seat_connections  # type: ignore[no-any-return]


def _clipboard_out(request: Request, lease: SeatLease) -> bool:
    """Whether the seat's rules let its clipboard reach the page; no when the seat is not found here (fail closed)."""
    broker = _broker(request)
    seat = broker.pool.get(lease.seat_id) if broker.pool is not None and broker.runs(lease) else None
    return seat is not None and seat.kind.rules.clipboard_out


def _prepare_seat_connection(request: Request, lease: SeatLease) -> None:
    """Connect to the leased seat's x11vnc while the page travels and loads, or take over the connection its pool
    held while the seat waited warm (`prepared_rfb`)."""
    broker = _broker(request)
    pool = broker.pool if broker.runs(lease) else None
    seat = pool.get(lease.seat_id) if pool is not None else None
    if pool is None or seat is None:
        return
    address, password = seat.process.rfb_address, seat.passwords.full_access
    lifetime, standby = broker.settings.launch_token_seconds, pool.take_standby(seat)
    from_thread.run_sync(lambda: _prepared(request.app).prepare(lease.id, address, password, lifetime, standby))


@router.post("/agent/apps/{app_id}/reconnect")
def reconnect_token(
    app_id: str, request: Request, session: AgentSession, _checked: ScriptCsrf, db: DbSession, clock: ClockDep
) -> JSONResponse:
    """A fresh one-time token for the seat the agent already holds, for the seat page to reconnect by itself after
    its websocket dropped (a Wi-Fi hiccup, a gateway restart). The seat and its application are kept (``launch``
    reuses the live lease); a session that has ended is refused by ``AgentSession`` (401 with the reason), and the
    page then shows why instead of retrying. A seat that policy's idle timeout or maximum length ended is not
    replaced here (409, in the person's language): that takes the person's click in the workspace."""
    try:
        launched = service.reconnect(db, session, app_id, clock(), _broker(request))
    except GatewayError as error:  # refusals are audited; returning (not raising) lets that row commit
        message = refusal_message(request, error)
        return JSONResponse({"error": error.reason, "message": message}, status_code=error.status_code)
    return JSONResponse({"token": launched.token}, headers={"Cache-Control": "no-store"})


def _redeem(websocket: WebSocket, token: str) -> tuple[str, RfbAddress, str, DisplayRules] | None:
    """Spend the token for the cookie's session: (lease id, RFB address, VNC password, the seat's display rules), or
    None (refused, audited)."""
    app = websocket.app
    broker: SeatBroker = app.state.seat_broker
    now: datetime = app.state.clock()
    source = client_address(websocket)
    with session_scope(app.state.engine) as db:
        session = session_for_token(db, websocket.cookies.get(SESSION_COOKIE), now)
        if session is not None and session.state is not SessionState.ACTIVE:
            session = None
        try:
            lease = spend(db, token, session, now, source)
        except LaunchRefused:
            return None
        seat = broker.pool.get(lease.seat_id) if broker.pool is not None and broker.runs(lease) else None
        if seat is None:
            return None
        service.mark_connected(db, lease, now)
        return lease.id, seat.process.rfb_address, seat.passwords.full_access, seat.kind.rules


def _disconnected(websocket: WebSocket, lease_id: str) -> None:
    with session_scope(websocket.app.state.engine) as db:
        service.mark_disconnected(db, lease_id, websocket.app.state.clock())


@router.websocket("/seats/ws")
async def seat_socket(websocket: WebSocket, token: str = "") -> None:
    """Check the token once, bind it to the person and seat, then bridge to x11vnc, authenticating for the browser."""
    grant = await run_in_threadpool(_redeem, websocket, token)
    if grant is None:
        await websocket.close(code=POLICY_VIOLATION)
        return
    lease_id, address, password, rules = grant
    browser = await accept_browser(websocket)
    try:
        opened = await _prepared(websocket.app).take(lease_id)
        await bridge_to_seat(websocket, browser, address, password, rules, opened)
    except STREAM_ENDED as error:
        log.info("seat websocket of lease %s ended: %s", lease_id, error or type(error).__name__)
    finally:
        await run_in_threadpool(_disconnected, websocket, lease_id)
        if websocket.client_state.name == "CONNECTED":
            await websocket.close()
