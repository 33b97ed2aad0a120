"""The seat viewer's noVNC as one content-hashed file, built at install time and cached by browsers for good.

Debian's noVNC is 41 ES modules that a fresh browser fetches one import level at a time: 0.7–1.2 s between the
click and the seat's websocket (FIELD_NOTES). `deploy/seat-viewer/build.mjs` (run by `deploy/embedded.sh` and
`tests/run.sh`) bundles them with esbuild into `novnc-rfb-<hash>.js` and names it in `manifest.json`. The hash
changes with the content, so the file can be served `immutable`: a browser that has it never asks again, and a new
noVNC arrives under a new name. Without a build the pages fall back to Debian's modules at `/novnc` (slow, logged).
"""

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request

log = logging.getLogger(__name__)

VIEWER_PATH = "/seats/viewer"
DEBIAN_RFB_MODULE = "/novnc/core/rfb.js"
SEAT_PAGE_SCRIPT = "/static/seat_viewer.js"
"""The seat page's own module (status bar, scaling, reconnects), imported beside noVNC."""
IMMUTABLE = "public, max-age=31536000, immutable"
"""RFC 8246: the content under this name never changes, so a browser need not revalidate it, even on reload."""
_BUNDLE_NAME = re.compile(r"novnc-rfb-[A-Za-z0-9]+\.js")


@dataclass(frozen=True)
class SeatViewer:
    """Where the pages import noVNC's RFB from: the built bundle, or Debian's modules when none was built."""

    bundle: Path | None

    @property
    def rfb_module(self) -> str:
        return f"{VIEWER_PATH}/{self.bundle.name}" if self.bundle else DEBIAN_RFB_MODULE

    @property
    def page_modules(self) -> tuple[str, str]:
        """The modules the seat page imports, for `<link rel="modulepreload">`: on the seat page itself, so the page's
        own module is fetched while the page parses instead of once the parser reaches the script at its end (its
        module graph, and with it noVNC's attaching to the held websocket, waited on that fetch), and on the pages
        before it, so they are in the cache by then."""
        return (self.rfb_module, self.page_script)

    @property
    def page_script(self) -> str:
        return SEAT_PAGE_SCRIPT


def find_seat_viewer(directory: Path) -> SeatViewer:
    """The bundle `manifest.json` in `directory` names, if it exists and is a bundle's name."""
    try:
        name = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))["rfb"]
    except (OSError, ValueError, KeyError) as error:
        log.warning(
            "no seat viewer bundle in %s (%s): serving Debian's noVNC modules, run deploy/lib.sh's build_seat_viewer",
            directory,
            error,
        )
        return SeatViewer(None)
    bundle = directory / str(name)
    if not _BUNDLE_NAME.fullmatch(str(name)) or not bundle.is_file():
        log.warning("the seat viewer manifest in %s names no bundle file (%r)", directory, name)
        return SeatViewer(None)
    return SeatViewer(bundle)


def attach_seat_viewer(app: FastAPI, directory: Path) -> None:
    """Find the bundle once, at start: its name is fixed for the life of the process."""
    app.state.seat_viewer = find_seat_viewer(directory)


def seat_viewer(request: Request) -> SeatViewer:
    return request.app.state.seat_viewer  # type: ignore[no-any-return]
