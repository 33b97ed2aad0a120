"""The FastAPI application factory: one process serves the API and pages and runs the scheduler."""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine

from certs.authority import Authority
from certs.errors import CertificateError
from certs.revocation import HttpRevocationChecker
from gateway.audit import jobs as audit_jobs
from gateway.audit.folding import RefusalFolder
from gateway.clock import Clock, utcnow
from gateway.db import make_engine
from gateway.directory import Directory, open_directory
from gateway.enrollment import jobs as enrollment_jobs
from gateway.enrollment.import_routes import MAX_CSV_BYTES
from gateway.enrollment.routes import router as enrollment_router
from gateway.errors import GatewayError
from gateway.nodes.lifecycle import ClusterMember, join_cluster
from gateway.pki import jobs as pki_jobs
from gateway.pki.ca import CaNotReady, open_authority
from gateway.pki.client_cas import ClientCaBundle
from gateway.pki.routes import router as pki_router
from gateway.seats import jobs as seat_jobs
from gateway.seats.broker import start_broker
from gateway.seats.routes import mount_novnc
from gateway.seats.routes import router as seats_router
from gateway.sessions import jobs as session_jobs
from gateway.sessions.client_cert import audit_unproven_forwarding
from gateway.sessions.deps import LoginRequired
from gateway.sessions.login import LoginServices
from gateway.sessions.routes import router as sessions_router
from gateway.sessions.throttle import ThrottleLimits
from gateway.settings import Settings, get_settings
from gateway.supervision import jobs as supervision_jobs
from gateway.supervision.metrics import metrics_router, record_request_latency
from gateway.supervision.routes import router as supervision_router
from gateway.voice import jobs as voice_jobs
from gateway.voice.choose import choose_platform
from gateway.voice.routes import router as voice_router
from gateway.vpn.controller import start_vpn
from gateway.vpn.routes import router as vpn_router
from gateway.web.api_docs import router as api_docs_router
from gateway.web.body_limit import BodyLimitMiddleware, BodyLimits
from gateway.web.pages import STATIC_DIR, reason_message, render
from gateway.web.routes import router as pages_router

log = logging.getLogger(__name__)


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _render_error(request: Request, error: Exception) -> Response:
    if isinstance(error, LoginRequired) and _wants_html(request):
        ended = f"?ended={error.ended.value}" if error.ended is not None else ""
        return RedirectResponse(f"/login{ended}", status_code=303)
    if isinstance(error, GatewayError):
        status, reason, message = error.status_code, error.reason, error.message
    else:  # a certificate the library refused (bad CSR, unsupported key, expired CA) is the caller's input problem
        status, reason, message = 400, "certificate", str(error)
    if _wants_html(request):
        return render(request, "error.html", status, error=reason_message(request, reason, message, detail=message))
    return JSONResponse({"error": reason, "message": message}, status_code=status)


MULTIPART_OVERHEAD = 64 * 1024
"""Room for a form's other fields and part headers around an uploaded file."""


def _body_limits(settings: Settings) -> BodyLimits:
    """The portal's limit for every body, and the few routes that take a file (by route template, not prefix): each at
    its own domain's limit."""
    enrollment = settings.enrollment
    return BodyLimits(
        default=settings.portal.max_body_bytes,
        larger=(
            ("/enrollment/envcheck/upload", enrollment.envcheck_max_upload_bytes),
            # HR uploads evidence on its own or with a decision; every other /hr/enrollment/ route takes a form.
            ("/hr/enrollment/{application_id}/evidence", enrollment.evidence_max_bytes + MULTIPART_OVERHEAD),
            ("/hr/enrollment/{application_id}/decide", enrollment.evidence_max_bytes + MULTIPART_OVERHEAD),
            ("/hr/enrollment-import", MAX_CSV_BYTES + MULTIPART_OVERHEAD),
        ),
    )


def _open_authority(settings: Settings, authority: Authority | None) -> tuple[Authority | None, str]:
    try:
        return authority or open_authority(settings), ""
    except CaNotReady as error:
        log.warning("certificate authority unavailable: %s", error.message)
        return None, error.message


def create_app(
    settings: Settings | None = None,
    engine: Engine | None = None,
    clock: Clock = utcnow,
    authority: Authority | None = None,
    directory: Directory | None = None,
    run_jobs: bool = True,
    client_cas: ClientCaBundle | None = None,
) -> FastAPI:
    """Build the app. Tests pass their own engine, clock and directory; ``run_jobs=False`` leaves the scheduler off.

    Without an ``authority`` the CA is opened from the settings; if that fails the app still serves everything but
    the PKI and certificate logins, which answer with the reason (``sohogw serve`` refuses to start instead).
    ``client_cas``: the TLS layer's client CA list when the gateway terminates TLS, refreshed on a schedule.
    """
    settings = settings or get_settings()
    engine = engine or make_engine(settings.db_url)
    authority, authority_problem = _open_authority(settings, authority)
    portal = settings.portal
    login_services = LoginServices(
        directory=directory or open_directory(settings.directory_settings, clock),
        authority=authority,
        revocation=HttpRevocationChecker(max_age=timedelta(seconds=settings.ca.company_crl_refresh_seconds)),
        limits=ThrottleLimits(
            portal.throttle_per_account, portal.throttle_per_source, timedelta(minutes=portal.throttle_window_minutes)
        ),
        node=settings.node_name,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        scheduler = BackgroundScheduler(timezone="UTC")
        shutdowns: list[Callable[[], None]] = []
        if run_jobs:
            # First: a second node on SQLite is refused before it touches anything (SecondNodeOnSqlite).
            member = ClusterMember(
                engine,
                join_cluster(engine, settings.node_name, settings.cluster, clock),
                settings.cluster,
                clock,
            )
            member.start()
            app.state.cluster = member
            shutdowns.append(audit_jobs.register(scheduler, engine, app.state.folded_refusals, clock))
            if authority is not None:
                pki_jobs.register(scheduler, engine, authority, settings, clock, client_cas)
            session_jobs.register(scheduler, engine, login_services, settings, clock)
            shutdowns.append(supervision_jobs.register(scheduler, engine, settings.supervision, clock))
            enrollment_jobs.register(scheduler, engine, settings.enrollment, clock, directory=login_services.directory)
            # Off the event loop: pyroute2 runs an asyncio loop of its own, which cannot start inside uvicorn's.
            vpn = await asyncio.to_thread(start_vpn, engine, settings.vpn, settings.data_dir, clock, settings.node_name)
            app.state.vpn = vpn
            shutdowns.append(vpn.stop)
            broker = start_broker(app)
            seat_jobs.register(scheduler, broker)
            shutdowns.append(broker.stop)
            voice_platform = choose_platform(settings.voice, clock)
            if voice_platform is not None:
                shutdowns.append(voice_jobs.register(scheduler, engine, voice_platform, settings.voice, clock))
            shutdowns.append(member.stop)  # last: the node leaves once its own work has stopped
        scheduler.start()
        try:
            yield
        finally:
            scheduler.shutdown(wait=False)
            for shutdown in shutdowns:
                shutdown()
            login_services.directory.close()

    app = FastAPI(title="SOHO Gateway", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings, app.state.engine, app.state.clock = settings, engine, clock
    app.state.authority, app.state.authority_problem = authority, authority_problem
    app.state.login_services = login_services
    app.state.folded_refusals = RefusalFolder()
    app.add_exception_handler(GatewayError, _render_error)
    app.add_exception_handler(CertificateError, _render_error)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for router in (
        api_docs_router,
        pages_router,
        sessions_router,
        pki_router,
        enrollment_router,
        seats_router,
        supervision_router,
        voice_router,
        vpn_router,
    ):
        app.include_router(router)
    app.include_router(metrics_router())
    app.middleware("http")(record_request_latency)
    app.middleware("http")(audit_unproven_forwarding)
    app.add_middleware(BodyLimitMiddleware, limits=_body_limits(settings))
    mount_novnc(app)
    return app
