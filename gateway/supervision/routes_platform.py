"""The contact-center platform's signed work-state API (contract in ``platform.py`` and docs/supervision.md)."""

from fastapi import APIRouter, Request

from gateway.deps import ClockDep, DbSession
from gateway.supervision.deps import SupervisionSettingsDep
from gateway.supervision.platform import apply_platform_state, verify

router = APIRouter(tags=["supervision"])


@router.post("/supervision/api/work-state")
async def platform_work_state(
    request: Request, db: DbSession, settings: SupervisionSettingsDep, clock: ClockDep
) -> dict[str, str]:
    message = verify(request.headers, await request.body(), settings, clock())
    row = apply_platform_state(db, message, clock())
    return {"login": row.login, "state": row.status.value, "since": row.started_at.isoformat()}
