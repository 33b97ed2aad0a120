"""The watermark the broker draws on every seat's display, so any screenshot names its agent.

The strip itself is a small C program (`watermark.c`, built at install time by deploy/lib.sh's
`build_seat_watermark` into `build/sohogw-seat-watermark`): one per seat, started by the broker beside the app
(never by the app), as the seat user. It costs ~1 MiB of PSS where the Tk script it replaces cost 11.7 MiB.
What it draws is defined here, once: the strip's height and colours, and the text
"agent-id · 2026-11-25 22:50 UTC" (the minute the screen was showing), refreshed when the minute changes and
raised above the app twice a second; its input shape is empty, so the pointer passes through to the app.
"""

import os
from pathlib import Path

from desktop_broker.x11.errors import SeatStartFailed

STRIP_HEIGHT = 24
BACKGROUND = "#1a1a1a"
TEXT_COLOUR = "#ffd400"
PROGRAM = Path(
    os.environ.get("SOHOGW_SEAT_WATERMARK") or Path(__file__).resolve().parents[2] / "build/sohogw-seat-watermark"
)
"""Built in the checkout by deploy/lib.sh; an installed package (the container image) names it in the environment."""


def watermark_argv(label: str) -> list[str]:
    """The strip's command line; the label comes last (tests and operators read it from /proc/PID/cmdline)."""
    if not PROGRAM.is_file():
        raise SeatStartFailed(f"the watermark program {PROGRAM} is not built: run deploy/lib.sh's build_seat_watermark")
    return [str(PROGRAM), str(STRIP_HEIGHT), BACKGROUND, TEXT_COLOUR, label]
