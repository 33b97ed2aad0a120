"""The contact-center platform's signed work-state API (contract in ``platform.py`` and docs/supervision.md).

The route is a plain ``def`` so its SQL runs in the thread pool, not on the event loop; only reading the body,
which must be awaited, happens in the small async dependency below.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from gateway.deps import ClockDep, DbSession
from gateway.supervision.deps import SupervisionSettingsDep
from gateway.supervision.platform import apply_platform_state, verify

router = APIRouter(tags=["supervision"])


async def _raw_body(request: Request) -> bytes:
    """The bytes exactly as signed: the signature covers them, not a parsed form of them."""
    return await request.body()


RawBody = Annotated[bytes, Depends(_raw_body)]


@router.post("/supervision/api/work-state")
def platform_work_state(
    request: Request, body: RawBody, db: DbSession, settings: SupervisionSettingsDep, clock: ClockDep
) -> dict[str, str]:
    message = verify(request.headers, body, settings, clock())
    row = apply_platform_state(db, message, clock())
    return {"login": row.login, "state": row.status.value, "since": row.started_at.isoformat()}
