"""Browser libraries from npm, served from the gateway's own origin (no CDN, so a strict CSP can stay 'self').

``gateway/web/npm/package.json`` pins them and its lock file fixes every byte; ``npm ci`` there installs them
(deploy/lib.sh ``install_web_libraries``, run by deploy/embedded.sh and tests/run.sh). Only the files named here
are served, straight from ``node_modules``: nothing is copied into the repository.
"""

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from gateway.errors import Unavailable

NODE_MODULES = Path(__file__).parent / "npm" / "node_modules"
CHART_JS = NODE_MODULES / "chart.js" / "dist" / "chart.umd.min.js"
"""Chart.js 4 as one self-contained script (its one dependency bundled in)."""

router = APIRouter(tags=["pages"])


class LibraryMissing(Unavailable):
    reason = "web.library_missing"


@router.get("/lib/chart.umd.min.js", include_in_schema=False)
def chart_js() -> FileResponse:
    """Chart.js, for the wall's and the reports' charts."""
    if not CHART_JS.is_file():
        raise LibraryMissing(f"Chart.js is not installed at {CHART_JS}: run npm ci in gateway/web/npm")
    return FileResponse(CHART_JS, media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"})
