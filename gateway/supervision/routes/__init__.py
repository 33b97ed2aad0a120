"""Supervision's pages and APIs in one router for the app (``app.include_router(router)``)."""

from fastapi import APIRouter

from gateway.supervision.routes import agent, alerts, listening, platform, recordings, reports, view, wall

router = APIRouter()
for part in (wall, alerts, reports, agent, platform, view, recordings, listening):
    router.include_router(part.router)
