"""The watermark the broker draws on every seat's display, so any screenshot names its agent.

The strip itself is a small C program (`watermark.c`, built at install time by deploy/lib.sh's
`build_seat_watermark` into `build/sohogw-seat-watermark`): one per seat, started by the broker beside the app
(never by the app), as the seat user. It costs ~1 MiB of PSS where the Tk script it replaces cost 11.7 MiB.
What it draws is defined here, once: the strip's height and colours, and the text
"agent-id · 2026-11-25 22:50 UTC" (the minute the screen was showing), refreshed when the minute changes and
raised above the app twice a second; its input shape is empty, so the pointer passes through to the app.
A running strip is relabelled through its stdin and confirms on its stdout once the new text is drawn (`relabel`).
"""

import os
import select
import subprocess
import time
from pathlib import Path

from desktop_broker.x11.errors import SeatStartFailed, WatermarkNotDrawn

STRIP_HEIGHT = 24
BACKGROUND = "#1a1a1a"
TEXT_COLOUR = "#ffd400"
PROGRAM = Path(
    os.environ.get("SOHOGW_SEAT_WATERMARK") or Path(__file__).resolve().parents[2] / "build/sohogw-seat-watermark"
)
"""Built in the checkout by deploy/lib.sh; an installed package (the container image) names it in the environment."""
DRAWN = b"drawn\n"
"""The strip's answer to a new label, written once the X server has drawn it (`watermark.c`)."""
DRAWN_TIMEOUT_SECONDS = 3.0
"""How long a hand-over waits for the strip to confirm: ~1 ms on a quiet machine; more is a strip that hangs."""


def watermark_argv(label: str) -> list[str]:
    """The strip's command line, `label` (the one it starts with) last; once relabelled, its window's name
    (WM_NAME) says what it shows."""
    if not PROGRAM.is_file():
        raise SeatStartFailed(f"the watermark program {PROGRAM} is not built: run deploy/lib.sh's build_seat_watermark")
    return [str(PROGRAM), str(STRIP_HEIGHT), BACKGROUND, TEXT_COLOUR, label]


def relabel(strip: "subprocess.Popen[bytes]", label: str, timeout_seconds: float = DRAWN_TIMEOUT_SECONDS) -> None:
    """Show `label` on a running strip and return once the X server has drawn it (the strip's "drawn" line).

    Raises `WatermarkNotDrawn` when the strip does not confirm within `timeout_seconds` (it died, or hangs): a seat
    must then not be handed over, since its display may still show another label. Control characters in the label
    would end the line early; they are shown as '?' (as the strip's font shows what is not Latin-1).
    """
    if strip.stdin is None or strip.stdout is None:
        raise WatermarkNotDrawn(f"the watermark (pid {strip.pid}) was not started with pipes to relabel it")
    printable = "".join(c if c.isprintable() else "?" for c in label)
    try:
        strip.stdin.write(printable.encode() + b"\n")
        strip.stdin.flush()
    except OSError as error:  # a strip that has exited closed its end
        raise WatermarkNotDrawn(f"the watermark (pid {strip.pid}) cannot be relabelled: {error}") from None
    answer = b""
    deadline = time.monotonic() + timeout_seconds
    while not answer.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([strip.stdout], [], [], remaining)[0]:
            raise WatermarkNotDrawn(
                f"the watermark (pid {strip.pid}) did not draw {label!r} within {timeout_seconds} s"
            )
        chunk = os.read(strip.stdout.fileno(), 64)
        if not chunk:
            raise WatermarkNotDrawn(f"the watermark (pid {strip.pid}) exited before drawing {label!r}")
        answer += chunk
    if answer != DRAWN:
        raise WatermarkNotDrawn(f"the watermark (pid {strip.pid}) answered {answer!r} to a relabel")
