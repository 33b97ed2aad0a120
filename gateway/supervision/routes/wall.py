"""The wall page, its event stream, and view-only screen watching."""

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy import Engine

from gateway.clock import as_utc
from gateway.db import keep_refusal, session_scope
from gateway.deps import ClockDep, DbSession, RowId
from gateway.errors import Forbidden
from gateway.sessions.client_cert import client_address
from gateway.sessions.deps import CheckedForm, SupervisorSession
from gateway.sessions.models import HomeSession, SessionState
from gateway.sessions.service import get_session
from gateway.supervision.deps import SupervisionSettingsDep
from gateway.supervision.help import answer_help
from gateway.supervision.monitoring import end_watch, grid_picture, start_watch
from gateway.supervision.scope import ScopedAgent, supervisor_scope
from gateway.supervision.state import BREAK_REASONS
from gateway.supervision.wall import WallHub, sse
from gateway.web.pages import reason_message, render
from policy import SupervisedTeams

router = APIRouter(tags=["supervision"])
KEEPALIVE_SECONDS = 15.0
SESSION_CHECK_SECONDS = 2.0
"""How often an open stream checks that its supervisor is still signed in (the wall says "live" only then)."""


def _source(request: Request) -> str:
    return client_address(request)


def _hub(request: Request) -> WallHub:
    """The app's wall, made with the app and run by its worker runner (never started by a request)."""
    hub: WallHub = request.app.state.supervision_wall
    return hub


@router.get("/supervision/wall", response_class=HTMLResponse)
def wall_page(request: Request, session: SupervisorSession, settings: SupervisionSettingsDep) -> HTMLResponse:
    return render(request, "supervision_wall.html", break_reasons=BREAK_REASONS, limits=settings.wall_limits())


def _scope_of(engine: Engine, supervisor: HomeSession) -> SupervisedTeams:
    """The supervisor's teams (off the event loop: it reads the policy from the database)."""
    with session_scope(engine) as db:
        return supervisor_scope(db, supervisor)


def _still_signed_in(engine: Engine, session_id: str, now: datetime) -> bool:
    """Whether the supervisor's session is still active (signed out, ended by an admin, timed out: not)."""
    with session_scope(engine) as db:
        session = get_session(db, session_id)
        return session is not None and session.state is SessionState.ACTIVE and as_utc(session.expires_at) > now


@router.get("/supervision/wall/events")
async def wall_events(request: Request, session: SupervisorSession) -> Response:
    """Server-sent events of the supervisor's teams: a ``snapshot`` first, then ``diff`` events; ``alive`` every 15 s
    keeps proxies open and tells the page the stream is; ``ended`` when the supervisor's session has ended."""
    hub = _hub(request)
    engine, clock = request.app.state.engine, request.app.state.clock
    queue, snapshot = await hub.subscribe(await asyncio.to_thread(_scope_of, engine, session))

    async def stream() -> AsyncIterator[str]:
        try:
            yield snapshot
            checked = alive = time.monotonic()
            while not await request.is_disconnected():
                if time.monotonic() - checked >= SESSION_CHECK_SECONDS:
                    checked = time.monotonic()
                    if not await asyncio.to_thread(_still_signed_in, engine, session.id, clock()):
                        yield sse("ended", {})  # the page stops saying "live" and does not reconnect
                        return
                try:
                    message = await asyncio.wait_for(queue.get(), timeout=SESSION_CHECK_SECONDS)
                except TimeoutError:
                    if time.monotonic() - alive >= KEEPALIVE_SECONDS:
                        alive = time.monotonic()
                        yield sse("alive", {})  # an event, not a comment: the page sees it and keeps saying "live"
                    continue
                if message is None:  # too slow to keep up: the browser reconnects and gets a fresh snapshot
                    return
                yield message
        finally:
            hub.unsubscribe(queue)

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


@router.post("/supervision/watch/{session_id}", response_class=HTMLResponse)
def watch_screen(
    request: Request, session: SupervisorSession, form: CheckedForm, agent: ScopedAgent, db: DbSession, clock: ClockDep
) -> HTMLResponse:
    try:
        viewer = request.app.state.screen_viewer
        watch, url = start_watch(db, session, agent.id, viewer=viewer, now=clock(), source=_source(request))
    except Forbidden as refused:  # audited as refused_by_policy: returning (not raising) lets that row commit
        error = reason_message(request, refused.reason, refused.message)
        return render(request, "error.html", refused.status_code, error=error)
    return render(request, "supervision_watch.html", watch=watch, url=url)


@router.get("/supervision/wall/screens/{session_id}")
def screen_picture(
    request: Request, session: SupervisorSession, agent: ScopedAgent, db: DbSession, clock: ClockDep
) -> Response:
    """A small JPEG of the agent's seat for the screen wall (the grid reloads it every few seconds)."""
    try:
        thumbnails = request.app.state.screen_thumbnails
        picture = grid_picture(db, session, agent, thumbnails=thumbnails, now=clock(), source=_source(request))
    except Forbidden:
        keep_refusal(db)
        raise
    return Response(picture, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.post("/supervision/help/{session_id}/answer")
def answer_help_request(
    request: Request, session: SupervisorSession, form: CheckedForm, agent: ScopedAgent, db: DbSession, clock: ClockDep
) -> Response:
    """The supervisor takes the agent's help request; the flag leaves every wall."""
    answer_help(db, agent, session.login, now=clock(), source=_source(request))
    return RedirectResponse("/supervision/wall", status_code=303)


@router.post("/supervision/watch/{watch_id}/end")
def stop_watching(
    request: Request, watch_id: RowId, session: SupervisorSession, form: CheckedForm, db: DbSession, clock: ClockDep
) -> Response:
    end_watch(db, watch_id, session, now=clock(), source=_source(request))
    return RedirectResponse("/supervision/wall", status_code=303)
