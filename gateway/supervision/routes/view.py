"""The supervisor's view-only seat page, its websocket, and the agent's "who is watching me" notice.

The websocket is the gate: it spends the one-time view token (`viewing.spend_view_token`), then bridges
to x11vnc authenticating with the seat's view-only password, and ends the watch (audited) when it closes.
While it runs it re-checks every `WATCH_CHECK_SECONDS` that the watch may go on (stopped from another
tab, the supervisor signed out, the seat ended, policy changed) and closes the stream if not.
"""

import asyncio
import logging
from datetime import UTC, datetime

from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from desktop_broker.x11 import RfbAddress
from gateway.db import session_scope
from gateway.deps import ClockDep, DbSession
from gateway.seats.broker import SeatBroker
from gateway.seats.errors import LaunchRefused
from gateway.seats.rfb_socket import STREAM_ENDED, accept_browser, bridge_to_seat
from gateway.seats.viewer_assets import seat_viewer
from gateway.sessions.client_cert import client_address
from gateway.sessions.deps import SESSION_COOKIE, AgentSession, SupervisorSession
from gateway.sessions.models import SessionState
from gateway.sessions.service import session_for_token
from gateway.supervision import viewing
from gateway.supervision.monitoring import watchers_told
from gateway.web.i18n import translate
from gateway.web.pages import language_of, render
from policy.rules import DisplayRules

log = logging.getLogger(__name__)
POLICY_VIOLATION = 1008  # RFC 6455 §7.4.1
WATCH_CHECK_SECONDS = 2.0

router = APIRouter(tags=["seats"])


@router.get("/seats/view", response_class=HTMLResponse)
def view_page(
    request: Request, session: SupervisorSession, db: DbSession, clock: ClockDep, token: str = ""
) -> HTMLResponse:
    """The watch page's frame: noVNC (X11 seats) or guacamole-common-js (Guacamole seats) showing the seat with no
    input wired at all, the agent's name, a "view only" banner."""
    shown = viewing.agent_of_token(db, token, session)
    if shown is None:
        return render(request, "seat_refused.html", 403, reason="seat.view.link_refused", detail="")
    agent, backend = shown
    since = f"{clock().astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    if backend == "guacamole":
        websocket_url = request.app.state.seat_broker.settings.guacamole_websocket_url
        return render(
            request, "seat_view_guacamole.html", token=token, agent=agent, since=since, websocket_url=websocket_url
        )
    rfb_module = seat_viewer(request).rfb_module
    return render(request, "seat_view.html", token=token, agent=agent, since=since, rfb_module=rfb_module)


def _redeem(websocket: WebSocket, token: str) -> tuple[viewing.ViewGrant, RfbAddress, str] | None:
    """Spend the view token for the cookie's session: (grant, RFB address, view-only password), or None."""
    app = websocket.app
    broker: SeatBroker = app.state.seat_broker
    now: datetime = app.state.clock()
    with session_scope(app.state.engine) as db:
        session = session_for_token(db, websocket.cookies.get(SESSION_COOKIE), now)
        if session is not None and session.state is not SessionState.ACTIVE:
            session = None
        try:
            grant = viewing.spend_view_token(db, token, session, now, client_address(websocket))
        except LaunchRefused:
            return None
        seat = broker.pool.get(grant.seat_id) if broker.pool is not None else None
        if seat is None or seat.holder != grant.lease_id:
            viewing.end_view(db, grant, now, client_address(websocket))
            return None
        return grant, seat.process.rfb_address, viewing.view_password(seat)


def _still_watching(websocket: WebSocket, grant: viewing.ViewGrant) -> bool:
    with session_scope(websocket.app.state.engine) as db:
        return viewing.still_watching(db, grant, websocket.app.state.clock())


def _ended(websocket: WebSocket, grant: viewing.ViewGrant) -> None:
    with session_scope(websocket.app.state.engine) as db:
        viewing.end_view(db, grant, websocket.app.state.clock(), client_address(websocket))


async def _watchdog(websocket: WebSocket, grant: viewing.ViewGrant) -> None:
    while await run_in_threadpool(_still_watching, websocket, grant):
        await asyncio.sleep(WATCH_CHECK_SECONDS)


@router.websocket("/seats/view/ws")
async def view_socket(websocket: WebSocket, token: str = "") -> None:
    """Spend a view token, then bridge to x11vnc as a view-only client until either side or the watch ends."""
    redeemed = await run_in_threadpool(_redeem, websocket, token)
    if redeemed is None:
        await websocket.close(code=POLICY_VIOLATION)
        return
    grant, address, password = redeemed
    browser = await accept_browser(websocket)
    # A supervisor watches the screen; neither the agent's clipboard nor a paste crosses, whatever the seat's rules.
    stream = asyncio.create_task(bridge_to_seat(websocket, browser, address, password, DisplayRules()))
    watchdog = asyncio.create_task(_watchdog(websocket, grant))
    try:
        await asyncio.wait([stream, watchdog], return_when=asyncio.FIRST_COMPLETED)
        if stream.done():
            stream.result()
    except STREAM_ENDED as error:
        log.info("watch %s of %s ended: %s", grant.watch_id, grant.agent_login, error or type(error).__name__)
    finally:
        for task in (stream, watchdog):
            task.cancel()
        await asyncio.gather(stream, watchdog, return_exceptions=True)
        await run_in_threadpool(_ended, websocket, grant)
        if websocket.client_state.name == "CONNECTED":
            await websocket.close()


@router.get("/agent/seats/watchers")
def watchers(request: Request, session: AgentSession, db: DbSession) -> JSONResponse:
    """The seat page's notice: who watches this agent now, when policy says to tell (polled by the page)."""
    language = language_of(request)
    notices = [translate(language, "seat.view.watched_by", supervisor=login) for login in watchers_told(db, session.id)]
    return JSONResponse({"notices": notices}, headers={"Cache-Control": "no-store"})
