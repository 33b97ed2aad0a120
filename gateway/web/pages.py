"""Rendering a page: the templates, the person's language, and the ``t`` function for translated strings."""

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from gateway.web.i18n import choose_language, translate

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
STATIC_DIR = Path(__file__).parent / "static"
LANGUAGE_COOKIE = "sohogw_lang"


def language_of(request: Request) -> str:
    return choose_language(request.cookies.get(LANGUAGE_COOKIE), request.headers.get("accept-language"))


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    language = language_of(request)
    context.setdefault("session", getattr(request.state, "home_session", None))
    context.setdefault("error", None)

    def t(key: str, **values: object) -> str:
        return translate(language, key, **values)

    return templates.TemplateResponse(request, template, {"lang": language, "t": t, **context}, status_code=status_code)


def reason_message(request: Request, reason: str, fallback: str, **values: object) -> str:
    """The translated message for a refusal reason, or the service's own English text when none exists."""
    key = f"reason.{reason}"
    text = translate(language_of(request), key, **values)
    return fallback if text == key else text
