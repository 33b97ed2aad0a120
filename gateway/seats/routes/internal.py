"""The loopback routes guacamole-lite's server.js calls (docs/guacamole.md, "The loopback contract").

Loopback only, and never through the reverse proxy: a request carrying forwarding headers is refused,
so a proxy that forgets to block /internal/ still cannot let the outside redeem or report launches.
"""

import asyncio
import contextlib
import time
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StrictInt
from starlette.concurrency import run_in_threadpool

from desktop_broker.guacamole.gate import LaunchGate, LaunchRefused
from gateway.audit.service import record
from gateway.db import session_scope
from gateway.deps import ClockDep, DbSession
from gateway.errors import Forbidden
from gateway.seats.endings import RECHECK_SECONDS
from gateway.seats.launch_store import (
    ViewJoins,
    launch_is_alive,
    live_lease_of_launch,
    proven_launch,
    redeem_launch,
    report_connected,
    report_input,
)
from gateway.seats.models import SeatLeaseState

_LOOPBACK = {"127.0.0.1", "::1"}
_FORWARDING_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip", "x-ssl-client-cert")


def _loopback_only(request: Request) -> None:
    host = request.client.host if request.client else ""
    if host not in _LOOPBACK or any(name in request.headers for name in _FORWARDING_HEADERS):
        raise Forbidden("internal launch routes answer guacamole-lite on loopback only")


router = APIRouter(prefix="/internal/launch", tags=["internal"], dependencies=[Depends(_loopback_only)])


class Redemption(BaseModel):
    launch_id: str
    token_sha256: str


class Connected(BaseModel):
    launch_id: str
    token_sha256: str
    connection_id: str


class Closed(BaseModel):
    launch_id: str
    token_sha256: str


INPUT_AGE_LIMIT_MS = 86_400_000


class InputSeen(BaseModel):
    launch_id: str
    token_sha256: str
    idle_ms: Annotated[StrictInt, Field(ge=0, le=INPUT_AGE_LIMIT_MS)]
    """How long ago the agent's last input was when server.js sent this (a few seconds at most: it reports input
    within lib/agent-input.js's REPORT_MS); the bound keeps the arithmetic in range, not the seat open."""


def gate(request: Request, db: DbSession, clock: ClockDep) -> LaunchGate:
    return request.app.state.seat_broker.guacamole_gate(db, clock())  # type: ignore[no-any-return]


Gate = Annotated[LaunchGate, Depends(gate)]


def _view_joins(request: Request) -> ViewJoins:
    return request.app.state.view_joins  # type: ignore[no-any-return]


Views = Annotated[ViewJoins, Depends(_view_joins)]
"""Supervision's rules for supervisors' read-only joins, given to the app at construction."""


@router.post("/redeem")
def redeem(body: Redemption, gate: Gate, views: Views, db: DbSession, clock: ClockDep) -> JSONResponse:
    """200 with the grant server.js expects, or 403: unknown, used, expired or altered launches, or ones whose
    lease or session (a supervisor's: watch) has ended (audited)."""
    try:
        launch = redeem_launch(db, gate, body.launch_id, body.token_sha256, clock(), views)
    except LaunchRefused as error:
        record(
            db,
            actor="guacamole-lite",
            action="seat.connect",
            target=body.launch_id[:64],
            outcome="refused",
            source="loopback",
            detail={"reason": error.reason, "backend": "guacamole"},
        )
        return JSONResponse({"error": "launch_refused", "message": error.reason}, status_code=403)
    record(
        db,
        actor=launch.user,
        action="seat.connect",
        target=launch.seat,
        outcome="success",
        source="loopback",
        detail={"launch": launch.launch_id, "mode": launch.mode.value, "backend": "guacamole"},
    )
    return JSONResponse(launch.redemption())


def _alive_now(request: Request, launch_id: str) -> bool:
    with session_scope(request.app.state.engine) as db:
        return launch_is_alive(db, launch_id, request.app.state.clock(), request.app.state.view_joins)


@router.get("/alive")
async def alive(
    request: Request, launch_id: str, wait_ms: Annotated[int, Query(ge=0, le=60_000)] = 0
) -> dict[str, bool]:
    """Whether the launch's live connection may go on; server.js closes the websocket and guacd's socket on "no".

    Held up to `wait_ms`: answered "no" the moment an end on this node is committed (the broker's `EndingSignal`,
    nudged after the commit), re-read every `RECHECK_SECONDS` for ends committed elsewhere, and "alive" when the
    wait is over. No database session is held while waiting.
    """
    endings = request.app.state.seat_broker.endings
    deadline = time.monotonic() + wait_ms / 1000
    while True:
        with endings.listening() as ended:
            is_alive = await run_in_threadpool(_alive_now, request, launch_id)
            remaining = deadline - time.monotonic()
            if not is_alive or remaining <= 0:
                return {"alive": is_alive}
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ended.wait(), min(remaining, RECHECK_SECONDS))


def _refused_report(db: DbSession, event: str, launch_id: str, error: LaunchRefused) -> JSONResponse:
    record(
        db,
        actor="guacamole-lite",
        action=f"seat.{event}",
        target=launch_id[:64],
        outcome="refused",
        source="loopback",
        detail={"reason": error.reason, "backend": "guacamole"},
    )
    return JSONResponse({"error": "report_refused", "message": error.reason}, status_code=403)


@router.post("/connected")
def connected(body: Connected, db: DbSession, clock: ClockDep) -> JSONResponse:
    """guacd's id of the agent's live connection: what a supervisor's read-only join selects. 403 (audited) without
    the launch's token hash, or for a launch that already reported one."""
    try:
        report_connected(db, body.launch_id, body.token_sha256, body.connection_id, clock())
    except LaunchRefused as error:
        return _refused_report(db, "connected", body.launch_id, error)
    return JSONResponse({"status": "ok"})


@router.post("/closed")
def closed(body: Closed, views: Views, db: DbSession, clock: ClockDep) -> JSONResponse:
    """The websocket ended: an agent's seat waits for a reconnect; a supervisor's watch ends (audited). 403 (audited)
    without the launch's token hash."""
    try:
        proven_launch(db, body.launch_id, body.token_sha256)
    except LaunchRefused as error:
        return _refused_report(db, "closed", body.launch_id, error)
    if views.close(db, body.launch_id, clock()):
        return JSONResponse({"status": "ok"})
    lease = live_lease_of_launch(db, body.launch_id)
    if lease is not None and lease.state is SeatLeaseState.CONNECTED:
        lease.state, lease.last_activity_at = SeatLeaseState.ASSIGNED, clock()
        db.add(lease)
    return JSONResponse({"status": "ok"})


@router.post("/input")
def input_seen(body: InputSeen, db: DbSession, clock: ClockDep) -> JSONResponse:
    """The agent typed or moved the pointer `idle_ms` ago (server.js reads it off their websocket): the lease's last
    input, from which the seat broker ends a Guacamole seat at the policy's idle timeout. 403 (audited) without the
    launch's token hash; 422 for an age below zero, above a day or not a whole number."""
    try:
        report_input(db, body.launch_id, body.token_sha256, timedelta(milliseconds=body.idle_ms), clock())
    except LaunchRefused as error:
        return _refused_report(db, "input", body.launch_id, error)
    return JSONResponse({"status": "ok"})
