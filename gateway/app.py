"""The FastAPI application factory: one process serves the API and pages and runs every background worker."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException

from certs.authority import Authority
from certs.errors import CertificateError
from certs.revocation import HttpRevocationChecker
from gateway.adoption import LegacyAdoption
from gateway.audit.folding import RefusalFolder
from gateway.audit.workers import FoldedRefusalFlush
from gateway.clock import Clock, utcnow
from gateway.db import make_engine
from gateway.directory import Directory, open_directory
from gateway.enrollment.deps import handoff_of
from gateway.enrollment.routes import router as enrollment_router
from gateway.enrollment.routes.csv_import import MAX_CSV_BYTES
from gateway.enrollment.service import vetted_number
from gateway.enrollment.workers import enrollment_workers
from gateway.errors import GatewayError
from gateway.nodes.lifecycle import ClusterMember, join_cluster
from gateway.notify.sms import HttpSms
from gateway.pki.ca import open_authority
from gateway.pki.client_cas import ClientCaBundle
from gateway.pki.errors import CaNotReady
from gateway.pki.routes import router as pki_router
from gateway.pki.workers import pki_workers
from gateway.policies.routes import router as policies_router
from gateway.seats.broker import start_broker
from gateway.seats.routes import mount_novnc
from gateway.seats.routes import router as seats_router
from gateway.seats.service import SEAT_ENDED, sessions_with_live_seats
from gateway.seats.workers import seat_workers
from gateway.sessions.client_cert import audit_unproven_forwarding, client_address
from gateway.sessions.endings import LiveChildren
from gateway.sessions.errors import LoginRequired
from gateway.sessions.login import LoginServices
from gateway.sessions.routes import router as sessions_router
from gateway.sessions.throttle import ThrottleLimits
from gateway.sessions.workers import session_workers
from gateway.settings import Settings, get_settings
from gateway.supervision.alerts import RecordingStorageAlarm
from gateway.supervision.metrics import metrics_router, record_request_latency
from gateway.supervision.monitoring import ScreenViewer
from gateway.supervision.routes import router as supervision_router
from gateway.supervision.state import BREAK_REASONS
from gateway.supervision.viewing import WATCHED_VIEW_JOINS, seat_broker_thumbnails, seat_broker_viewer
from gateway.supervision.wall import WallHub
from gateway.supervision.workers import supervision_workers
from gateway.voice.choose import choose_platform
from gateway.voice.routes import router as voice_router
from gateway.voice.service import LEG_CHANGED, sessions_with_live_legs
from gateway.voice.workers import CallLegs, SatisfactionSurveys
from gateway.vpn.controller import start_vpn
from gateway.vpn.leases import LEASE_RETIRED, sessions_with_live_tunnels
from gateway.vpn.routes import router as vpn_router
from gateway.vpn.workers import vpn_workers
from gateway.web.api_docs import router as api_docs_router
from gateway.web.body_limit import BodyLimitMiddleware, BodyLimits
from gateway.web.certificate_pages import router as certificate_pages_router
from gateway.web.forms import refusal_message
from gateway.web.libraries import router as libraries_router
from gateway.web.pages import STATIC_DIR, reason_message, render
from gateway.web.routes import land_signed_in
from gateway.web.routes import router as pages_router
from gateway.web.unstorable_text import UnstorableTextMiddleware
from gateway.workers.contract import Worker
from gateway.workers.runner import WorkerRunner

log = logging.getLogger(__name__)


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _render_error(request: Request, error: Exception) -> Response:
    if isinstance(error, LoginRequired) and _wants_html(request):
        ended = f"?ended={error.ended.value}" if error.ended is not None else ""
        return RedirectResponse(f"/login{ended}", status_code=303)
    if isinstance(error, GatewayError):
        status, reason, message = error.status_code, error.reason, error.message
        shown = refusal_message(request, error)
    else:  # a certificate the library refused (bad CSR, unsupported key, expired CA) is the caller's input problem
        status, reason, message = 400, "certificate", str(error)
        shown = reason_message(request, reason, message, detail=message)
    if _wants_html(request):
        return render(request, "error.html", status, error=shown)
    body = {"error": reason, "message": message}
    if isinstance(error, LoginRequired) and error.ended is not None:
        # the seat page, open when a session ends, says why in the person's language, as the sign-in page would
        body["ended"] = error.ended.value
        body["ended_message"] = reason_message(request, f"session_ended.{error.ended.value}", "")
    return JSONResponse(body, status_code=status)


async def _render_routing_error(request: Request, error: Exception) -> Response:
    """What the framework itself refuses (no such address, a path part that is not a number) as the translated error
    page for a browser, as a refused service call is; API clients keep FastAPI's JSON answer."""
    if isinstance(error, RequestValidationError):
        if not _wants_html(request):
            return await request_validation_exception_handler(request, error)
        status = 422
    else:
        assert isinstance(error, StarletteHTTPException)
        if not _wants_html(request):
            return await http_exception_handler(request, error)
        status = error.status_code
    reason = "not_found" if status == 404 else "bad_request"
    return render(request, "error.html", status, error=reason_message(request, reason, reason))


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
        return authority or open_authority(settings.ca), ""
    except CaNotReady as error:
        log.warning("certificate authority unavailable: %s", error.message)
        return None, error.message


def background_workers(
    app: FastAPI, login_services: LoginServices, client_cas: ClientCaBundle | None
) -> list[Worker[Any, Any]]:
    """Every background worker of this node, each domain's from its ``workers.py``. Starts the VPN's interface and
    makes the seat broker (both on ``app.state``) first: the workers drive them."""
    state = app.state
    settings, engine, clock, authority = state.settings, state.engine, state.clock, state.authority
    state.vpn = start_vpn(engine, settings.vpn, settings.data_dir, clock, settings.node_name)
    voice_platform = choose_platform(settings.voice, clock)
    state.voice_platform = voice_platform  # supervisors' listening asks it (gateway/voice/listening.py)
    children = [  # what an ending session waits for before it is ended
        LiveChildren("tunnel", LEASE_RETIRED, sessions_with_live_tunnels),
        LiveChildren("seat", SEAT_ENDED, sessions_with_live_seats),
        LiveChildren("voice leg", LEG_CHANGED, sessions_with_live_legs),
    ]
    return [
        FoldedRefusalFlush(engine, state.folded_refusals, clock),
        *(pki_workers(engine, authority, settings, clock, client_cas) if authority is not None else []),
        *session_workers(engine, login_services, settings, clock, children),
        *supervision_workers(engine, settings.supervision, clock),
        *enrollment_workers(engine, settings.enrollment, clock, handoff_of(state)),
        *vpn_workers(state.vpn),
        *seat_workers(start_broker(app)),
        *([CallLegs(engine, voice_platform, settings.voice, clock)] if voice_platform is not None else []),
        *(
            [SatisfactionSurveys(engine, HttpSms(settings.sms), settings.voice.survey, clock)]
            if voice_platform is not None and settings.voice.survey.enabled
            else []
        ),
    ]


def create_app(
    settings: Settings | None = None,
    engine: Engine | None = None,
    clock: Clock = utcnow,
    authority: Authority | None = None,
    directory: Directory | None = None,
    run_jobs: bool = True,
    client_cas: ClientCaBundle | None = None,
    screen_viewer: ScreenViewer | None = None,
) -> FastAPI:
    """Build the app. Tests pass their own engine, clock and directory; ``run_jobs=False`` runs no background worker
    but the wall's (which only computes while a supervisor watches).

    Without an ``authority`` the CA is opened from the settings; if that fails the app still serves everything but
    the PKI and certificate logins, which answer with the reason (``sohogw serve`` refuses to start instead).
    ``client_cas``: the TLS layer's client CA list when the gateway terminates TLS, refreshed on a schedule.
    ``screen_viewer``: what a supervisor's "watch" links to; default: this node's seat broker.
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
        adopt_legacy=LegacyAdoption(),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        workers: list[Worker[Any, Any]] = [app.state.supervision_wall]
        member: ClusterMember | None = None
        if run_jobs:
            # First: a second node on SQLite is refused before it touches anything (SecondNodeOnSqlite).
            node = await asyncio.to_thread(join_cluster, engine, settings.node_name, settings.cluster, clock)
            member = ClusterMember(engine, node, settings.cluster, clock)
            app.state.cluster = member
            # Off the event loop: pyroute2 runs an asyncio loop of its own, which cannot start in uvicorn's.
            workers += [*member.workers, *await asyncio.to_thread(background_workers, app, login_services, client_cas)]
        app.state.workers = WorkerRunner(workers, engine, clock, member.gate if member is not None else None)
        app.state.workers.start()
        if member is not None:
            member.start()
        try:
            yield
        finally:
            if member is not None:
                member.stop_listening()
            app.state.workers.stop()
            if member is not None:
                member.leave()  # last: the node leaves once its own work has stopped
            login_services.directory.close()

    app = FastAPI(title="SOHO Gateway", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings, app.state.engine, app.state.clock = settings, engine, clock
    app.state.authority, app.state.authority_problem = authority, authority_problem
    app.state.login_services = login_services
    app.state.folded_refusals = RefusalFolder()
    # Supervision's side of screen watching, handed to the seats domain below it rather than registered globally.
    app.state.screen_viewer = screen_viewer or seat_broker_viewer(app.state)
    app.state.screen_thumbnails = seat_broker_thumbnails(app.state)
    # What lower domains show from higher ones, handed down instead of imported up (docs/architecture.md, Layers).
    app.state.break_reasons = BREAK_REASONS
    app.state.hr_vetted_number = vetted_number
    app.state.land_signed_in = land_signed_in  # an agent's only app opens at sign-in (seats)
    app.state.recording_storage_alarm = RecordingStorageAlarm()
    app.state.view_joins = WATCHED_VIEW_JOINS
    app.state.supervision_wall = WallHub(engine, settings.supervision, clock)
    app.add_exception_handler(GatewayError, _render_error)
    app.add_exception_handler(CertificateError, _render_error)
    app.add_exception_handler(StarletteHTTPException, _render_routing_error)
    app.add_exception_handler(RequestValidationError, _render_routing_error)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for router in (
        api_docs_router,
        libraries_router,
        pages_router,
        sessions_router,
        pki_router,
        certificate_pages_router,
        enrollment_router,
        policies_router,
        seats_router,
        supervision_router,
        voice_router,
        vpn_router,
    ):
        app.include_router(router)
    app.include_router(metrics_router())
    app.middleware("http")(record_request_latency)
    app.middleware("http")(audit_unproven_forwarding)
    # Inside the body limit: it reads no more than the limit allows, and holds a body for JSON up to the default one.
    app.add_middleware(
        UnstorableTextMiddleware, json_limit=settings.portal.max_body_bytes, client_address=client_address
    )
    app.add_middleware(BodyLimitMiddleware, limits=_body_limits(settings))
    mount_novnc(app)
    # The sign-in page fetches the seat viewer while the person types: the seat page may be the sign-in's answer
    # (seats.open_only_app), and a fresh browser would otherwise fetch noVNC only then.
    viewer = app.state.seat_viewer
    app.state.sign_in_preloads = viewer.page_modules if settings.seats.enabled and viewer.bundle else ()
    return app
