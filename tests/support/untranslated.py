"""Finding English on a Chinese page, three ways:

- the visible text is compared with every English catalog value that the Chinese catalog translates differently: a
  value's literal pieces (around its ``{placeholders}``) of two words or more that appear are English a Chinese reader
  was shown (the key is named);
- a run of two or more Latin-letter words that no Chinese catalog value contains is English from outside the
  catalogs (a service's own message, the framework's "Not Found") where a catalog entry should be;
- a catalog key shown as itself (``supervision.wall.title``) is a key missing from both catalogs.

Data a test put on the page (names, group names) may be given as ``shown_data``.
"""

import re
from collections.abc import Iterable
from functools import cache

from playwright.sync_api import Page

from gateway.web.i18n import catalog

PLACEHOLDER = re.compile(r"\{[a-z_]+\}")
ENGLISH_RUN = re.compile(r"[A-Za-z][A-Za-z'’]+(?:[ ]+[A-Za-z][A-Za-z'’]*)+")
FROM_OUTSIDE = "(no catalog entry)"
RAW_KEY = "(key shown as itself)"


@cache
def _english_pieces() -> dict[str, str]:
    """Each English piece worth looking for, with the key it comes from."""
    english, chinese = catalog("en"), catalog("zh-CN")
    pieces: dict[str, str] = {}
    for key, text in english.items():
        if chinese.get(key, text) == text:
            continue  # the same in both (a product name, "UPN"): not a missing translation
        for piece in PLACEHOLDER.split(text):
            piece = piece.strip(" .,:;()—-·")
            if len(piece.split()) >= 2:
                pieces[piece] = key
    return pieces


@cache
def _raw_key() -> re.Pattern[str]:
    """A dotted name under one of the catalogs' own key prefixes (``refused.``, ``supervision.``…)."""
    prefixes = sorted({key.split(".")[0] for key in catalog("en") if "." in key})
    return re.compile(rf"\b(?:{'|'.join(map(re.escape, prefixes))})\.[a-z0-9_]+(?:\.[a-z0-9_]+)*\b")


def untranslated_on(page: Page, shown_data: Iterable[str] = ()) -> dict[str, str]:
    """English visible on ``page`` (the text → its key, or why it counts); empty when the page is all Chinese."""
    visible = page.inner_text("body")
    found = {piece: key for piece, key in _english_pieces().items() if piece in visible}
    kept_english = "\n".join([*catalog("zh-CN").values(), *shown_data])
    for run in ENGLISH_RUN.findall(visible):
        if run not in kept_english and not any(run in piece or piece in run for piece in found):
            found[run] = FROM_OUTSIDE
    for key in _raw_key().findall(visible):
        found[key] = RAW_KEY
    return found
