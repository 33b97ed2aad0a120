"""Prometheus metrics: ``metrics_router()`` serves ``/metrics``; ``record_request_latency`` times every request.

Gauges and counters are read from the database at scrape time (sessions, seats, peers, logins by outcome from the
audit log, alerts), so every node reports the same figures and nothing is lost on restart. Only the request
latency histogram and this node's worker passes (``gateway.workers.runner``: passes by outcome, their time, failures
in a row) live in the process. Scrapes are allowed from ``supervision.metrics_networks`` only, and never
through the reverse proxy: behind a proxy on the same host every outside request arrives from 127.0.0.1, so a request
carrying forwarding headers is refused whatever its address.
"""

import ipaddress
import time
from collections.abc import Awaitable, Callable, Iterator

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlmodel import col, func, select

from gateway.audit.models import AuditEvent
from gateway.clock import Clock
from gateway.db import session_scope
from gateway.errors import Forbidden
from gateway.sessions.directory_changes import SUBSCRIPTION_AUDIT_ACTION
from gateway.supervision.deps import SupervisionSettingsDep
from gateway.supervision.models import Alert
from gateway.supervision.settings import SupervisionSettings
from gateway.supervision.view import seat_view
from gateway.vpn.models import LeaseState, TunnelLease
from gateway.workers.runner import WORKER_REGISTRY

FORWARDING_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")
LATENCY_REGISTRY = CollectorRegistry()
REQUEST_SECONDS = Histogram(
    "sohogw_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route", "status"],
    registry=LATENCY_REGISTRY,
)


class GatewayFigures(Collector):
    """One scrape's figures from the database."""

    def __init__(self, engine: Engine, settings: SupervisionSettings, clock: Clock) -> None:
        self._engine, self._settings, self._clock = engine, settings, clock

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        with session_scope(self._engine) as db:
            rows = seat_view(db, self._clock(), self._settings)
            peers = db.exec(select(func.count()).where(TunnelLease.state == LeaseState.DESIRED)).one()
            logins = db.exec(
                select(AuditEvent.outcome, func.count())
                .where(AuditEvent.action == "session.login")
                .group_by(col(AuditEvent.outcome))
            ).all()
            subscription = db.exec(
                select(AuditEvent.outcome, func.count())
                .where(AuditEvent.action == SUBSCRIPTION_AUDIT_ACTION)
                .group_by(col(AuditEvent.outcome))
            ).all()
            alerts = db.exec(
                select(Alert.rule, col(Alert.open_key).is_not(None), func.count()).group_by(
                    col(Alert.rule), col(Alert.open_key).is_not(None)
                )
            ).all()
        yield GaugeMetricFamily("sohogw_live_agent_sessions", "Agents logged in", value=len(rows))
        yield GaugeMetricFamily("sohogw_seats", "Agents holding a seat", value=sum(1 for r in rows if r.seat))
        yield GaugeMetricFamily("sohogw_vpn_peers", "WireGuard peers wanted", value=peers)
        states = GaugeMetricFamily("sohogw_work_state_agents", "Agents per work state", labels=["state"])
        for state in ("ready", "on_call", "wrap_up", "break", "offline"):
            states.add_metric([state], sum(1 for r in rows if r.state == state))
        yield states
        by_outcome = CounterMetricFamily("sohogw_logins", "Login attempts by outcome", labels=["outcome"])
        for outcome, count in logins:
            by_outcome.add_metric([outcome], count)
        yield by_outcome
        changes = CounterMetricFamily(
            "sohogw_directory_subscription",
            "Directory change subscriptions lost and restored (every node's), from the audit log",
            labels=["outcome"],
        )
        for outcome, count in subscription:
            changes.add_metric([outcome], count)
        yield changes
        raised = CounterMetricFamily("sohogw_alerts", "Alerts raised by rule", labels=["rule"])
        open_now = GaugeMetricFamily("sohogw_alerts_open", "Alerts open by rule", labels=["rule"])
        totals: dict[str, int] = {}
        for rule, is_open, count in alerts:
            totals[rule] = totals.get(rule, 0) + count
            if is_open:
                open_now.add_metric([rule], count)
        for rule, count in totals.items():
            raised.add_metric([rule], count)
        yield raised
        yield open_now


async def record_request_latency(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """HTTP middleware (``app.middleware("http")(record_request_latency)``); labels by route template, not path."""
    started = time.perf_counter()
    response = await call_next(request)
    route = getattr(request.scope.get("route"), "path", "unmatched")
    REQUEST_SECONDS.labels(request.method, route, str(response.status_code)).observe(time.perf_counter() - started)
    return response


def metrics_router() -> APIRouter:
    router = APIRouter(tags=["metrics"])

    @router.get("/metrics")
    def metrics(request: Request, settings: SupervisionSettingsDep) -> Response:
        if any(name in request.headers for name in FORWARDING_HEADERS):
            raise Forbidden("metrics are not served through the reverse proxy; scrape the gateway directly")
        client = ipaddress.ip_address(request.client.host) if request.client else None
        if client is None or not any(client in network for network in settings.metrics_networks):
            raise Forbidden("metrics may be scraped only from supervision.metrics_networks")
        registry = CollectorRegistry()
        registry.register(GatewayFigures(request.app.state.engine, settings, request.app.state.clock))
        body = generate_latest(LATENCY_REGISTRY) + generate_latest(WORKER_REGISTRY) + generate_latest(registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return router
