"""The wall page, its event stream, and view-only screen watching."""

import asyncio
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from gateway.deps import ClockDep, DbSession, RowId
from gateway.errors import Forbidden
from gateway.sessions.client_cert import client_origin
from gateway.sessions.deps import CheckedForm, SupervisorSession
from gateway.supervision.monitoring import end_watch, start_watch
from gateway.supervision.state import BREAK_REASONS
from gateway.supervision.wall import WallHub
from gateway.web.pages import reason_message, render

router = APIRouter(tags=["supervision"])
KEEPALIVE_SECONDS = 15.0


def _source(request: Request) -> str:
    return client_origin(request, request.app.state.settings.portal).address


def _hub(request: Request) -> WallHub:
    """The app's wall, made with the app and run by its worker runner (never started by a request)."""
    hub: WallHub = request.app.state.supervision_wall
    return hub


@router.get("/supervision/wall", response_class=HTMLResponse)
def wall_page(request: Request, session: SupervisorSession) -> HTMLResponse:
    return render(request, "supervision_wall.html", break_reasons=BREAK_REASONS)


@router.get("/supervision/wall/events")
async def wall_events(request: Request, session: SupervisorSession) -> Response:
    """Server-sent events: a ``snapshot`` first, then ``diff`` events; a comment every 15 s keeps proxies open."""
    hub = _hub(request)
    queue, snapshot = await hub.subscribe()

    async def stream() -> AsyncIterator[str]:
        try:
            yield snapshot
            while not await request.is_disconnected():
                try:
                    message = await asyncio.wait_for(queue.get(), timeout=KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield ": keep-alive\n\n"
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
    request: Request, session_id: str, session: SupervisorSession, form: CheckedForm, db: DbSession, clock: ClockDep
) -> HTMLResponse:
    try:
        watch, url = start_watch(db, session, session_id, now=clock(), source=_source(request))
    except Forbidden as refused:  # audited as refused_by_policy: returning (not raising) lets that row commit
        error = reason_message(request, refused.reason, refused.message)
        return render(request, "error.html", refused.status_code, error=error)
    return render(request, "supervision_watch.html", watch=watch, url=url)


@router.post("/supervision/watch/{watch_id}/end")
def stop_watching(
    request: Request, watch_id: RowId, session: SupervisorSession, form: CheckedForm, db: DbSession, clock: ClockDep
) -> Response:
    end_watch(db, watch_id, session, now=clock(), source=_source(request))
    return RedirectResponse("/supervision/wall", status_code=303)
