"""A size limit on every request body, enforced before any of it is read.

Without it an unauthenticated POST of any size is read whole before the route can refuse it (a 150 MB body to the
CTI webhook was held in memory before its 401). This ASGI middleware sits outside the app: a declared
``Content-Length`` above the limit is answered 413 before the app runs; a body without a length (chunked) is counted
as the app reads it, and the read that crosses the limit stops the request, whatever the app would have answered
(FastAPI turns an error while reading a JSON body into its own 400), with the same 413. uvicorn stops reading the
socket while the app does not ask for more, so an unread body is not held either. Each refusal is audited.
"""

from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.audit.service import record
from gateway.db import session_scope
from gateway.web.stopped_body import app_unless_stopped, send_refusal


def _route_matches(template: str, path: str) -> bool:
    """A route as FastAPI writes it: each ``{name}`` is one non-empty path segment, the rest must match exactly.

    Not a prefix: a prefix such as ``/hr/enrollment/`` gave the evidence limit to every route under it."""
    wanted, given = template.split("/"), path.split("/")
    return len(wanted) == len(given) and all(
        part == segment or (part.startswith("{") and part.endswith("}") and segment != "")
        for part, segment in zip(wanted, given, strict=True)
    )


@dataclass(frozen=True)
class BodyLimits:
    """``default`` bytes for every path; ``larger`` names the few routes that take files, by their route template."""

    default: int
    larger: tuple[tuple[str, int], ...] = ()

    def for_path(self, path: str) -> int:
        return max([limit for route, limit in self.larger if _route_matches(route, path)], default=self.default)


def _message(limit: int) -> str:
    size = f"{limit // 1024} KiB" if limit < 1024 * 1024 else f"{limit // (1024 * 1024)} MiB"
    return f"the request is larger than the {size} this address accepts; send less (or a smaller file)"


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app, self.limits = app, limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.for_path(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await self._refuse(scope, send, limit, declared.decode("latin-1")[:20])
            return
        received = 0

        async def crosses_limit(message: Message) -> bool:
            nonlocal received
            received += len(message.get("body", b""))
            return received > limit

        if await app_unless_stopped(self.app, scope, receive, send, crosses_limit):
            await self._refuse(scope, send, limit, "unstated")

    async def _refuse(self, scope: Scope, send: Send, limit: int, declared: str) -> None:
        await run_in_threadpool(_audit, Request(scope), limit, declared)
        await send_refusal(scope, send, 413, "body_too_large", _message(limit), close=True)


def _audit(request: Request, limit: int, declared: str) -> None:
    with session_scope(request.app.state.engine) as db:
        record(
            db,
            actor="unknown",
            source=request.client.host if request.client else "",
            action="http.body_too_large",
            outcome="refused",
            target=request.url.path[:255],
            detail={"limit": limit, "declared": declared},
            clock=request.app.state.clock,
        )
