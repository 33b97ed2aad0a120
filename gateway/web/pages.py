"""Rendering a page: the templates, the person's language, and the ``t`` function for translated strings."""

from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from gateway.clock import as_utc
from gateway.web.i18n import DEFAULT, catalog, choose_language, translate

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
STATIC_DIR = Path(__file__).parent / "static"
LANGUAGE_COOKIE = "sohogw_lang"
TIME_ZONE_COOKIE = "sohogw_tz"
"""The browser's IANA zone, set by ``static/local_time.js``; the site's ``portal.time_zone`` until it is."""


def language_of(request: Request) -> str:
    return choose_language(request.cookies.get(LANGUAGE_COOKIE), request.headers.get("accept-language"))


def render(request: Request, template: str, status_code: int = 200, /, **context: Any) -> HTMLResponse:
    language = language_of(request)
    context.setdefault("session", getattr(request.state, "home_session", None))
    context.setdefault("error", None)
    context.setdefault("notice", notice_of(request, language))
    context.setdefault("typed", {})

    def t(key: str, **values: object) -> str:
        return translate(language, key, **values)

    zone = viewer_zone(request)

    def local_time(moment: datetime | None, with_date: bool = True) -> str:
        """``moment`` in the viewer's zone, its abbreviation beside it (a stored naive time is UTC)."""
        if moment is None:
            return "—"
        local = as_utc(moment).astimezone(zone)
        return local.strftime("%Y-%m-%d %H:%M %Z" if with_date else "%H:%M %Z")

    values = {"lang": language, "t": t, "local_time": local_time, **context}
    return templates.TemplateResponse(request, template, values, status_code=status_code)


def viewer_zone(request: Request) -> ZoneInfo:
    """The browser's zone (its cookie) if it names a real zone, else the site's setting, else UTC."""
    browser = unquote(request.cookies.get(TIME_ZONE_COOKIE, ""))  # the script URL-encodes it ("Asia%2FShanghai")
    for name in (browser, _site_zone(request)):
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def _site_zone(request: Request) -> str:
    settings = getattr(request.app.state, "settings", None)
    return settings.portal.time_zone if settings is not None else "UTC"


def reason_message(request: Request, reason: str, fallback: str, **values: object) -> str:
    """The translated message for a refusal reason, or the service's own English text when none exists."""
    key = f"reason.{reason}"
    text = translate(language_of(request), key, **values)
    return fallback if text == key else text


def notice_of(request: Request, language: str) -> str | None:
    """The translated notice a ``?done=<key>`` redirect asks for (``gateway.web.confirm.done``): only a key the
    catalogs have shows anything, so a crafted link cannot put its own words on the gateway's page."""
    key = f"done.{request.query_params.get('done', '')}"
    return catalog(language).get(key) or catalog(DEFAULT).get(key)
