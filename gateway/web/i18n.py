"""Translations for the portal's pages, chosen by the ``lang`` cookie, else the browser's Accept-Language.

Catalogs are JSON files in ``locales/``; a key missing from a catalog falls back to English, and a key missing from
English is shown as itself (and fails the catalog test), so a forgotten string is visible, never blank.
"""

import json
from functools import cache
from pathlib import Path

LANGUAGES = ("en", "zh-CN")
DEFAULT = "en"
_LOCALES = Path(__file__).parent / "locales"


@cache
def catalog(language: str) -> dict[str, str]:
    return dict(json.loads((_LOCALES / f"{language}.json").read_text(encoding="utf-8")))


def choose_language(cookie: str | None, accept_language: str | None) -> str:
    if cookie in LANGUAGES:
        return cookie
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return DEFAULT


def translate(language: str, key: str, **values: object) -> str:
    text = catalog(language).get(key) or catalog(DEFAULT).get(key) or key
    return text.format(**values) if values else text
