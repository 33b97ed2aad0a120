"""Text the database cannot store, refused at the door: a NUL character (U+0000) in the address, a query parameter,
a form field (URL-encoded, or a multipart form's text part) or a JSON string.

PostgreSQL's text types cannot hold a NUL: the statement that writes one fails (``psycopg.DataError``), and with it
the request's transaction, so a NUL that reached a service answered 500 and lost what the request was to record —
a sign-in name with a NUL lost the refusal's audit row and its count, a supervisor's form its refusal's row (SQLite
stores the NUL, so the same request behaved differently on the two databases). No person types a NUL into a form;
refusing it once here, for every route, keeps every service from having to. A multipart form's files are not text
(a DER certificate holds NUL bytes) and pass as they are, as does a body that is neither a form nor JSON (an OCSP
request, the environment check's upload: `JSON_KINDS`).

An ASGI middleware inside the body limit (`body_limit.py`), on its pattern: the address and query are checked before
the app runs; the body is checked as the app reads it (a multipart form part by part, without holding its files),
and the read of its last part, when a NUL was found, stops the request whatever the app would have answered, with a
422 that names the field (the translated error page for a browser, JSON for a script). The app reads a whole body
before it acts on any of it. Each refusal is audited, folded per peer (`gateway.audit.folding`): anyone can cause
one; the key is the TCP peer, as for the body limit (the middleware runs before anything reads the proxy's headers).
"""

import codecs
import json
from collections.abc import Iterator
from urllib.parse import parse_qsl

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.audit.folding import RefusalKey, write_folded
from gateway.web.forms import NOT_KEPT
from gateway.web.pages import reason_message, render

NUL = "\x00"
SHOWN_VALUE = 100
"""Characters of a refused value kept in its audit row (secrets are not kept at all)."""


class _Unstorable(Exception):
    """Raised into the app by the read of the body's last part; the middleware answers 422."""


def _pairs_with_nul(pairs: list[tuple[str, str]]) -> tuple[str, str] | None:
    return next(((name, value) for name, value in pairs if NUL in name or NUL in value), None)


def _json_strings(value: object, where: str) -> Iterator[tuple[str, str]]:
    """Every string of a JSON document, keys included, with where it sits (``items[0].note``)."""
    if isinstance(value, str):
        yield where or "(body)", value
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _json_strings(item, f"{where}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            inside = f"{where}.{key}" if where else key
            yield inside, key
            yield from _json_strings(item, inside)


JSON_KINDS = ("", "application/json", "text/plain")
"""Bodies looked through as JSON (besides ``*/*+json``): what FastAPI parses as JSON, and a script's ``fetch`` of a
string. Any other type (an upload's ``application/octet-stream``, an OCSP request) passes unread and unheld."""


class _BodyCheck:
    """Fed the body as the app reads it; ``found`` is the first (field, value) with a NUL."""

    def __init__(self, content_type: str) -> None:
        kind, options = parse_options_header(content_type)
        media = kind.decode("latin-1").lower()
        self.found: tuple[str, str] | None = None
        self._held: bytearray | None = None
        """A URL-encoded form or a JSON document, no larger than the body limit outside this middleware allows."""
        self._urlencoded = media == "application/x-www-form-urlencoded"
        if self._urlencoded or media in JSON_KINDS or media.endswith("+json"):
            self._held = bytearray()
        self._multipart: MultipartParser | None = None
        if media == "multipart/form-data" and b"boundary" in options:
            self._charset = _codec(options.get(b"charset", b"utf-8"))
            self._part_name, self._part_is_file, self._part = "", False, bytearray()
            self._header, self._header_value, self._disposition = b"", b"", b""
            self._multipart = MultipartParser(
                options[b"boundary"],
                {
                    "on_part_begin": self._part_begins,
                    "on_header_field": self._header_field,
                    "on_header_value": self._header_value_part,
                    "on_header_end": self._header_ends,
                    "on_headers_finished": self._headers_finished,
                    "on_part_data": self._part_data,
                    "on_part_end": self._part_ends,
                },
            )

    def feed(self, chunk: bytes) -> None:
        if self._held is not None:
            self._held += chunk
        elif self._multipart is not None:
            try:
                self._multipart.write(chunk)
            except FormParserError:
                self._multipart = None  # not a form Starlette reads either: the app refuses it as any other

    def finish(self) -> None:
        """At the body's end: a URL-encoded form or a JSON document, held until now, is looked through."""
        if self._held is None or self.found is not None:
            return
        if self._urlencoded:
            self.found = _pairs_with_nul(parse_qsl(self._held.decode("latin-1"), keep_blank_values=True))
            return
        try:
            document = json.loads(self._held)
        except ValueError:
            return  # not JSON after all: the app refuses it, or reads it as what it is
        self.found = next(((field, text) for field, text in _json_strings(document, "") if NUL in text), None)

    def _part_begins(self) -> None:
        self._part_name, self._part_is_file, self._part, self._disposition = "", False, bytearray(), b""

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header += data[start:end]

    def _header_value_part(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_ends(self) -> None:
        if self._header.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        self._part_name = _decoded(options.get(b"name", b""), self._charset)
        self._part_is_file = b"filename" in options

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if not self._part_is_file:
            self._part += data[start:end]

    def _part_ends(self) -> None:
        if self.found is None and not self._part_is_file:
            self.found = _pairs_with_nul([(self._part_name, _decoded(bytes(self._part), self._charset))])


def _codec(charset: bytes) -> str:
    """The charset a multipart form's text is decoded with, as Starlette decodes it (latin-1 for one it lacks)."""
    try:
        return codecs.lookup(charset.decode("latin-1")).name
    except LookupError:
        return "latin-1"


def _decoded(data: bytes, charset: str) -> str:
    try:
        return data.decode(charset)
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _visible(text: str) -> str:
    return text.replace(NUL, "\\x00")


class UnstorableTextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if NUL in scope["path"]:
            await self._refuse(scope, send, ("(address)", scope["path"]))
            return
        query = _pairs_with_nul(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        if query is not None:
            await self._refuse(scope, send, query)
            return
        headers = dict(scope["headers"])
        check = _BodyCheck(headers.get(b"content-type", b"").decode("latin-1"))
        stopped, started = False, False

        async def checked_receive() -> Message:
            nonlocal stopped
            message = await receive()
            if message["type"] == "http.request":
                check.feed(message.get("body", b""))
                if not message.get("more_body", False):
                    check.finish()
                    stopped = check.found is not None
                    if stopped:
                        raise _Unstorable
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if stopped:
                return  # the app's own answer to the body we stopped (FastAPI makes it a 400): ours goes out instead
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, checked_receive, guarded_send)
        except Exception:
            if not stopped:
                raise
        if stopped and not started:
            assert check.found is not None
            await self._refuse(scope, send, check.found)

    async def _refuse(self, scope: Scope, send: Send, found: tuple[str, str]) -> None:
        request = Request(scope)
        field, value = _visible(found[0])[:64], found[1]
        await run_in_threadpool(_audit, request, field, "" if found[0] in NOT_KEPT else value)
        message = f"the field “{field}” holds a NUL character (U+0000), which cannot be stored; remove it and try again"
        if "text/html" in request.headers.get("accept", ""):
            shown = reason_message(request, "unstorable_text", message, field=field)
            await render(request, "error.html", 422, error=shown)(scope, _no_body, send)
            return
        body = json.dumps({"error": "unstorable_text", "message": message, "field": field}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 422, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def _audit(request: Request, field: str, value: str) -> None:
    """The refusal's row, folded per peer: the field, and what it held (cut; a secret's value is not kept)."""
    app = request.app
    now = app.state.clock()
    key = RefusalKey("http.unstorable_text", request.client.host if request.client else "", "refused")
    target = _visible(f"{request.method} {request.url.path}")[:255]
    row = app.state.folded_refusals.refusal(key, target, {"field": field, "value": value[:SHOWN_VALUE]}, now)
    if row is not None:
        write_folded(app.state.engine, row, now)
