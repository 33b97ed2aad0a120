"""Finding English on a Chinese page: the visible text of a page is compared with every English catalog value
that the Chinese catalog translates differently. A value's literal pieces (around its ``{placeholders}``) of two
words or more that appear on the page are English a Chinese reader was shown."""

import re

from playwright.sync_api import Page

from gateway.web.i18n import catalog

PLACEHOLDER = re.compile(r"\{[a-z_]+\}")


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


def untranslated_on(page: Page) -> dict[str, str]:
    """English catalog pieces visible on ``page`` (piece → key); empty when the page is all Chinese."""
    visible = page.inner_text("body")
    return {piece: key for piece, key in _english_pieces().items() if piece in visible}
