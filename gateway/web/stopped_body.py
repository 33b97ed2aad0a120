"""Running the app with a body a door check may stop mid-read, and the refusal it answers instead.

The checks at the door (`body_limit`, `unstorable_text`) look at a body as the app reads it, so that nothing is held
twice. The read that shows the request must be refused raises into the app; whatever the app then answers (FastAPI
turns an error while reading a JSON body into its own 400) is dropped, and the check's refusal goes out instead,
unless the app had already begun its answer.
"""

import json
from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.web.pages import reason_message, render


class BodyStopped(Exception):
    """Raised into the app by the read that stops its body."""


async def app_unless_stopped(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, stops: Callable[[Message], Awaitable[bool]]
) -> bool:
    """Run ``app``; ``stops`` sees each part of the body as the app reads it and says whether the request ends there.

    True when it was stopped before any of the app's answer went out: the caller sends its refusal."""
    stopped, started = False, False

    async def inspected_receive() -> Message:
        nonlocal stopped
        message = await receive()
        if message["type"] == "http.request" and await stops(message):
            stopped = True
            raise BodyStopped
        return message

    async def guarded_send(message: Message) -> None:
        nonlocal started
        if stopped:
            return  # the app's own answer to the body we stopped: the refusal goes out instead
        started = started or message["type"] == "http.response.start"
        await send(message)

    try:
        await app(scope, inspected_receive, guarded_send)
    except Exception:
        if not stopped:
            raise
    return stopped and not started


async def send_refusal(
    scope: Scope,
    send: Send,
    status: int,
    error: str,
    message: str,
    values: Mapping[str, str] | None = None,
    *,
    close: bool = False,
) -> None:
    """The refusal: the translated error page for a browser, JSON (``error``, ``message`` and ``values``) for a
    script; ``close`` asks the client to close the connection (a body it may still be sending is not read)."""
    request = Request(scope)
    values = values or {}
    if "text/html" in request.headers.get("accept", ""):
        shown = reason_message(request, error, message, **values)
        await render(request, "error.html", status, error=shown)(scope, _no_body, send)
        return
    body = json.dumps({"error": error, "message": message, **values}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}
