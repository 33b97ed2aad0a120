"""Supervision's pages and APIs in one router for the app (``app.include_router(router)``)."""

from fastapi import APIRouter

from gateway.supervision import routes_agent, routes_alerts, routes_platform, routes_reports, routes_wall

router = APIRouter()
for part in (routes_wall, routes_alerts, routes_reports, routes_agent, routes_platform):
    router.include_router(part.router)
