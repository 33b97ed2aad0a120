"""The FastAPI application factory: one process serves the API and pages and runs the scheduler."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from apscheduler.schedulers.background import BackgroundScheduler
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, text

from certs.authority import Authority
from certs.errors import CertificateError
from gateway.clock import Clock, utcnow
from gateway.db import make_engine
from gateway.errors import GatewayError
from gateway.pki import jobs as pki_jobs
from gateway.pki.ca import CaNotReady, open_authority
from gateway.pki.routes import router as pki_router
from gateway.settings import Settings, get_settings

log = logging.getLogger(__name__)


def _render_error(_request: Request, error: Exception) -> JSONResponse:
    if isinstance(error, GatewayError):
        return JSONResponse({"error": error.reason, "message": error.message}, status_code=error.status_code)
    # A certificate the library refused (bad CSR, unsupported key, expired CA) is the caller's input problem.
    return JSONResponse({"error": "certificate", "message": str(error)}, status_code=400)


def create_app(
    settings: Settings | None = None,
    engine: Engine | None = None,
    clock: Clock = utcnow,
    authority: Authority | None = None,
    run_jobs: bool = True,
) -> FastAPI:
    """Build the app. Tests pass their own engine and clock; ``run_jobs=False`` leaves the scheduler off.

    Without an ``authority`` the CA is opened from the settings; if that fails the app still serves everything but
    the PKI, whose routes answer 503 with the reason (``sohogw serve`` refuses to start instead).
    """
    settings = settings or get_settings()
    engine = engine or make_engine(settings.db_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        scheduler = BackgroundScheduler(timezone="UTC")
        if run_jobs and app.state.authority is not None:
            pki_jobs.register(scheduler, engine, app.state.authority, settings, clock)
        scheduler.start()
        try:
            yield
        finally:
            scheduler.shutdown(wait=False)

    app = FastAPI(title="SOHO Gateway", lifespan=lifespan)
    app.state.settings, app.state.engine, app.state.clock = settings, engine, clock
    try:
        app.state.authority, app.state.authority_problem = authority or open_authority(settings), ""
    except CaNotReady as error:
        log.warning("certificate authority unavailable: %s", error.message)
        app.state.authority, app.state.authority_problem = None, error.message
    app.add_exception_handler(GatewayError, _render_error)
    app.add_exception_handler(CertificateError, _render_error)
    app.include_router(pki_router)

    @app.get("/healthz")
    def health() -> dict[str, str]:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return {"status": "ok", "node": settings.node_name, "ca": "ready" if app.state.authority else "not ready"}

    return app
