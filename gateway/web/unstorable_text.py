"""Text the database cannot store, refused at the door: a NUL character (U+0000) or a lone surrogate (U+D800–DFFF)
in the address, a query parameter, a form field (URL-encoded, or a multipart form's text part) or a JSON string.

PostgreSQL's text types cannot hold a NUL: the statement that writes one fails (``psycopg.DataError``), and with it
the request's transaction, so a NUL that reached a service answered 500 and lost what the request was to record —
a sign-in name with a NUL lost the refusal's audit row and its count, a supervisor's form its refusal's row (SQLite
stores the NUL, so the same request behaved differently on the two databases). A lone surrogate is no character at
all: it does not encode as UTF-8, so neither psycopg nor sqlite3 can send it (500 on both), and JSON's ``"\\ud800"``
or a multipart part in ``charset=utf-7`` makes one. No person types either into a form; refusing them once here,
for every route, keeps every service from having to. A multipart form's files are not text (a DER certificate holds
NUL bytes) and pass as they are, as does a body that is neither a form nor JSON (an OCSP request, the environment
check's upload); what is held and why: `_BodyCheck`. A request with two Content-Types is
refused (400): Starlette reads the first, so a check reading either could look at a body the app does not read.

An ASGI middleware inside the body limit (`body_limit.py`), stopping a body as it does (`stopped_body.py`): the
address and query are checked before the app runs; the body is checked as the app reads it (a multipart form part by
part, without holding its files), and the read of its last part, when such text was found, stops the request whatever
the app would have answered, with a 422 that names the field (the translated error page for a browser, JSON for a
script). The app reads a whole body before it acts on any of it. Each refusal is audited, folded per client address
(`gateway.audit.folding`): anyone can cause one. The address is the one the proven reverse proxy forwarded, else the
TCP peer (``client_address``, handed down by the app): keyed on the peer, every refusal behind the proxy folded into
one row, described by the latest, so one client's refusals hid another's field and target.
"""

import codecs
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.audit.folding import RefusalKey, write_folded
from gateway.web.forms import NOT_KEPT
from gateway.web.stopped_body import app_unless_stopped, send_refusal

NUL = "\x00"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
"""A NUL (PostgreSQL refuses it) or a surrogate (the only code points of a Python string UTF-8 cannot encode)."""
SHOWN_VALUE = 100
"""Characters of a refused value kept in its audit row (secrets are not kept at all)."""


def _unstorable(text: str) -> bool:
    return _UNSTORABLE.search(text) is not None


def _pairs_unstorable(pairs: list[tuple[str, str]]) -> tuple[str, str] | None:
    return next(((name, value) for name, value in pairs if _unstorable(name) or _unstorable(value)), None)


@dataclass(frozen=True, slots=True)
class _Where:
    """A JSON value's place as a link to its parent's: spelled out only for the string refused."""

    parent: "_Where | None"
    step: str | int


def _spelled(where: _Where | None) -> str:
    steps: list[str | int] = []
    while where is not None:
        steps.append(where.step)
        where = where.parent
    text = ""
    for step in reversed(steps):
        text += f"[{step}]" if isinstance(step, int) else f".{step}" if text else step
    return text or "(body)"


def _json_string_unstorable(document: object) -> tuple[str, str] | None:
    """The first string of a JSON document (keys too) that cannot be stored, and where it sits (``items[0].note``).

    Walked with a stack of parent links, not recursion (a document nested deeper than Python recurses still parses)
    and not a path string per item: spelling every item's path cost the key's length for each item, and 4 MiB of
    empty strings under one long key took 26 s."""
    stack: list[tuple[object, _Where | None]] = [(document, None)]
    while stack:
        value, where = stack.pop()
        if isinstance(value, str):
            if _unstorable(value):
                return _spelled(where), value
        elif isinstance(value, list):
            stack.extend((item, _Where(where, index)) for index, item in reversed(list(enumerate(value))))
        elif isinstance(value, dict):
            for key, item in reversed(value.items()):
                inside = _Where(where, key)
                stack += [(item, inside), (key, inside)]
    return None


MULTIPART_PARTS_LIMIT = 2000
"""Parts of a multipart form looked through at most: Starlette refuses a form of more than 1,000 fields or 1,000
files (its ``max_fields``, ``max_files``), and a route that reads none never stores one. Past it, the parse (on the
event loop, part by part) stops: 16 MiB of empty parts held it for ~2 s."""
MULTIPART_TEXT_PART_LIMIT = 1024 * 1024
"""Bytes of one text part held at most: Starlette refuses a larger one (``max_part_size``)."""


class _BodyCheck:
    """Fed the body as the app reads it; ``found``: the first (field, value) that cannot be stored, once ``finish`` ran.

    A URL-encoded form (as Starlette tells one from the Content-Type) is held whole: a route that takes a form reads
    all of it, and the body limit outside this middleware bounds it. Any other body is held up to ``json_limit``, the
    portal's body limit, and looked through as JSON if it parses as JSON, whatever its declared type: FastAPI parses a
    body without a type as JSON, and the environment check's result and the webhooks ``json.loads`` theirs whatever
    it says. Only the routes that take files accept more than that limit, and they parse no JSON: the environment
    check's upload streams its body unheld. A multipart form is read part by part, without holding its files."""

    def __init__(self, content_type: str, json_limit: int) -> None:
        media, options = parse_options_header(content_type)  # what Starlette's Request.form reads the type with
        self.found: tuple[str, str] | None = None
        self._urlencoded = media == b"application/x-www-form-urlencoded"
        self._json_limit = json_limit
        self._held: bytearray | None = bytearray()
        self.oversized_form = False
        """A URL-encoded form larger than ``json_limit``: refused (413), not held. Only the routes that take files
        accept bodies that large, and no form of ours is: holding one (16 MiB on the environment check's upload)
        cost ~880 MiB and seconds of parsing for nothing."""
        self._parts = 0
        self._multipart: MultipartParser | None = None
        if media == b"multipart/form-data" and b"boundary" in options:
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
            if len(self._held) > self._json_limit:
                self._held = None
                self.oversized_form = self._urlencoded
        if self._multipart is not None:
            try:
                self._multipart.write(chunk)
            except FormParserError:
                self._multipart = None  # not a form Starlette reads either: the app refuses it as any other
            if self._parts > MULTIPART_PARTS_LIMIT:
                self._multipart = None  # more than Starlette reads of a form: it refuses the form, or none is read

    @property
    def holds_text(self) -> bool:
        """A held body still to look through (most requests have none: no hop to the threadpool for them)."""
        return bool(self._held) and self.found is None

    def finish(self) -> None:
        """At the body's end, in the threadpool (a parse of the held body takes time the event loop must not give):
        the held body is looked through as a URL-encoded form and as JSON."""
        if self._held is None or self.found is not None:
            return
        if self._urlencoded:
            self.found = _pairs_unstorable(parse_qsl(self._held.decode("latin-1"), keep_blank_values=True))
        if self.found is None and len(self._held) <= self._json_limit:
            try:
                document = json.loads(self._held)
            except (ValueError, RecursionError):
                return  # not JSON (or nested deeper than the app can parse it either): no JSON strings to store
            self.found = _json_string_unstorable(document)

    def _part_begins(self) -> None:
        self._parts += 1
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
        if not self._part_is_file and len(self._part) <= MULTIPART_TEXT_PART_LIMIT:
            self._part += data[start:end]

    def _part_ends(self) -> None:
        if self.found is None and not self._part_is_file:
            self.found = _pairs_unstorable([(self._part_name, _decoded(bytes(self._part), self._charset))])


def _codec(charset: bytes) -> str:
    """The charset a multipart form's text is decoded with, as Starlette decodes it (latin-1 for one it lacks)."""
    try:
        return codecs.lookup(charset.decode("latin-1")).name
    except LookupError:
        return "latin-1"


def _decoded(data: bytes, charset: str) -> str:
    """As Starlette decodes a part: in its charset, else latin-1 (also for a codec that is not a text encoding, such
    as ``base64``, which `codecs.lookup` knows)."""
    try:
        return data.decode(charset)
    except (UnicodeDecodeError, LookupError):
        return data.decode("latin-1")


def _last_name(field: str) -> str:
    """A JSON path's last key (``password`` of ``user.password`` or ``password[0]``): whose secret a value is.

    A key holding a dot or brackets spells the same way, so more is blanked, never less."""
    return re.sub(r"(\[\d+\])+$", "", field).rsplit(".", 1)[-1]


def _visible(text: str) -> str:
    """The text as it can be stored and read: a NUL as ``\\x00``, a surrogate as ``\\ud800``."""
    return _storable(text).replace(NUL, "\\x00")


def _storable(text: str) -> str:
    """A surrogate as ``\\ud800``: a refused value with one, kept as it was, broke its refusal's own audit row."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class UnstorableTextMiddleware:
    def __init__(self, app: ASGIApp, json_limit: int, client_address: Callable[[HTTPConnection], str]) -> None:
        self.app, self.json_limit, self.client_address = app, json_limit, client_address

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _unstorable(scope["path"]):
            await self._refuse(scope, send, ("(address)", scope["path"]))
            return
        query = _pairs_unstorable(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        if query is not None:
            await self._refuse(scope, send, query)
            return
        content_types = Headers(scope=scope).getlist("content-type")
        if len(content_types) > 1:
            # Starlette reads the first, a proxy or a check may read the last: which one the body is, is unknowable.
            await self._refuse_two_types(scope, send, content_types)
            return
        check = _BodyCheck(content_types[0] if content_types else "", self.json_limit)

        async def holds_unstorable(message: Message) -> bool:
            check.feed(message.get("body", b""))
            if message.get("more_body", False):
                return False
            if check.holds_text:
                await run_in_threadpool(check.finish)
            return check.found is not None or check.oversized_form

        if await app_unless_stopped(self.app, scope, receive, send, holds_unstorable):
            if check.found is None:
                await self._refuse_oversized_form(scope, send)
            else:
                await self._refuse(scope, send, check.found)

    async def _refuse(self, scope: Scope, send: Send, found: tuple[str, str]) -> None:
        field, value = _visible(found[0])[:64], found[1]
        detail = {"field": field, "value": "" if _last_name(found[0]) in NOT_KEPT else _storable(value[:SHOWN_VALUE])}
        message = (
            f"the field “{field}” holds a character that cannot be stored (a NUL, U+0000, or a lone surrogate, "
            "U+D800–DFFF); remove it and try again"
        )
        await _answer(scope, send, self.client_address, 422, "unstorable_text", message, detail, field=field)

    async def _refuse_oversized_form(self, scope: Scope, send: Send) -> None:
        message = f"a form larger than {self.json_limit} bytes is not accepted here; send files as files"
        await _answer(scope, send, self.client_address, 413, "form_too_large", message, {"limit": self.json_limit})

    async def _refuse_two_types(self, scope: Scope, send: Send, content_types: list[str]) -> None:
        message = "the request has more than one Content-Type header; send one"
        detail = {"content_types": [_visible(kind)[:64] for kind in content_types[:4]]}
        await _answer(scope, send, self.client_address, 400, "two_content_types", message, detail)


async def _answer(
    scope: Scope,
    send: Send,
    client_address: Callable[[HTTPConnection], str],
    status: int,
    error: str,
    message: str,
    detail: Mapping[str, object],
    **values: str,
) -> None:
    """The refusal, audited as ``http.<error>``."""
    request = Request(scope)
    key = RefusalKey(f"http.{error}", client_address(request), "refused")
    await run_in_threadpool(_audit, request, key, detail)
    await send_refusal(scope, send, status, error, message, values)


def _audit(request: Request, key: RefusalKey, detail: Mapping[str, object]) -> None:
    """The refusal's row, folded per client address (anyone can cause one)."""
    app = request.app
    now = app.state.clock()
    target = _visible(f"{request.method} {request.url.path}")[:255]
    row = app.state.folded_refusals.refusal(key, target, detail, now)
    if row is not None:
        write_folded(app.state.engine, row, now)
