"""The environment check the applicant runs at home: the page, and the real transfers it times.

Download streams fresh random bytes (nothing to compress or cache); upload reads and discards the body. The server
times its own side of each transfer and keeps the counts, so the judged result does not rest on the browser alone.
"""

import os
import time
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse

from gateway.db import session_scope
from gateway.deps import ClockDep, DbSession
from gateway.enrollment import envcheck
from gateway.enrollment.deps import EnrollmentSettingsDep
from gateway.enrollment.envcheck_judge import PC_CLASSES
from gateway.enrollment.errors import EnvcheckRefused
from gateway.enrollment.service import latest_application
from gateway.sessions.deps import AgentSession, ScriptCsrf
from gateway.web.pages import render

router = APIRouter(tags=["enrollment"])
NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


@router.get("/enrollment/envcheck", response_class=HTMLResponse)
def envcheck_page(
    request: Request, session: AgentSession, db: DbSession, settings: EnrollmentSettingsDep
) -> HTMLResponse:
    return render(
        request,
        "enrollment_envcheck.html",
        application=latest_application(db, session.login),
        thresholds=settings.thresholds,
        pc_classes=PC_CLASSES,
    )


@router.post("/enrollment/envcheck/runs")
def start(
    session: AgentSession, _checked: ScriptCsrf, db: DbSession, clock: ClockDep, settings: EnrollmentSettingsDep
) -> dict[str, Any]:
    run = envcheck.start_run(db, session.login, clock())
    return {
        "run": run.id,
        "download_bytes": min(4 * 1024 * 1024, settings.envcheck_max_download_bytes),
        "upload_bytes": min(2 * 1024 * 1024, settings.envcheck_max_upload_bytes),
        "round_trips": 10,
    }


def _random_bytes(request: Request, run_id: str, size: int) -> Iterator[bytes]:
    started, sent = time.perf_counter(), 0
    while sent < size:
        chunk = os.urandom(min(envcheck.CHUNK, size - sent))
        sent += len(chunk)
        yield chunk
    with session_scope(request.app.state.engine) as db:
        envcheck.add_download(db, run_id, sent, time.perf_counter() - started)


@router.get("/enrollment/envcheck/download")
def download(
    request: Request,
    run: str,
    requested: Annotated[int, Query(alias="bytes")],
    session: AgentSession,
    db: DbSession,
    settings: EnrollmentSettingsDep,
) -> StreamingResponse:
    already = envcheck.open_run(db, run, session.login).download_bytes
    size = envcheck.checked_size(requested, settings.envcheck_max_download_bytes, already)
    headers = {**NO_STORE, "Content-Length": str(size)}
    return StreamingResponse(_random_bytes(request, run, size), media_type="application/octet-stream", headers=headers)


@router.post("/enrollment/envcheck/upload")
async def upload(
    request: Request,
    run: str,
    session: AgentSession,
    _checked: ScriptCsrf,
    db: DbSession,
    settings: EnrollmentSettingsDep,
) -> JSONResponse:
    started, received = time.perf_counter(), 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > settings.envcheck_max_upload_bytes:
            raise EnvcheckRefused(f"an upload is at most {settings.envcheck_max_upload_bytes} bytes")
    seconds = time.perf_counter() - started

    def note() -> None:
        run_row = envcheck.open_run(db, run, session.login)
        envcheck.add_upload(db, run_row, received, seconds, settings.envcheck_max_upload_bytes)

    await run_in_threadpool(note)
    return JSONResponse({"received": received}, headers=NO_STORE)


@router.get("/enrollment/envcheck/ping")
def ping(run: str, session: AgentSession, db: DbSession) -> JSONResponse:
    envcheck.add_round_trip(db, envcheck.open_run(db, run, session.login))
    return JSONResponse({"pong": True}, headers=NO_STORE)


@router.post("/enrollment/envcheck/runs/{run_id}/result")
async def result(
    run_id: str,
    request: Request,
    session: AgentSession,
    _checked: ScriptCsrf,
    db: DbSession,
    clock: ClockDep,
    settings: EnrollmentSettingsDep,
) -> dict[str, Any]:
    try:
        report = await request.json()
    except (ValueError, RecursionError):  # not JSON (or nested deeper than Python parses): as JSON not an object
        report = None
    if not isinstance(report, dict):
        raise EnvcheckRefused("the result must be a JSON object")

    def submit() -> dict[str, Any]:
        return envcheck.submit(db, envcheck.open_run(db, run_id, session.login), report, settings=settings, now=clock())

    return await run_in_threadpool(submit)
