"""Supervision's pages and APIs in one router for the app (``app.include_router(router)``)."""

from fastapi import APIRouter

from gateway.supervision.routes import agent, alerts, platform, reports, view, wall

router = APIRouter()
for part in (wall, alerts, reports, agent, platform, view):
    router.include_router(part.router)
