"""The watermark the broker draws on every seat's display, so any screenshot names its agent.

Run by the broker as `/usr/bin/python3 .../watermark.py LABEL` beside the app (never by the app); a plain
script of the standard library, so it needs nothing of the gateway's virtual environment:
a thin override-redirect strip along the bottom of the screen, raised above the app twice a second,
its text refreshed every minute. Its X input shape is empty, so pointer events pass through to the
app below and it never takes the keyboard focus.
"""

import ctypes
import ctypes.util
import sys
import tkinter
from datetime import UTC, datetime

STRIP_HEIGHT = 24
BACKGROUND = "#1a1a1a"
TEXT_COLOUR = "#ffd400"
_RAISE_EVERY_MS = 500
_REFRESH_EVERY_MS = 60_000
# X Shape extension (shape.h): the input shape kind, and the "replace" operation.
_SHAPE_INPUT = 2
_SHAPE_SET = 0


def watermark_text(label: str, now: datetime) -> str:
    """'agent-id · 2026-11-25 22:50 UTC', the minute the screen was showing."""
    return f"{label} · {now.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _clear_input_shape(window_id: int) -> None:
    """Give the strip an empty input region, so clicks fall through to the window below it.

    Tk maps an override-redirect toplevel inside a wrapper window it does not report (`wm frame`
    returns the inner window), so the wrapper, the real child of the root window, is shaped too.
    """
    xlib = ctypes.cdll.LoadLibrary(ctypes.util.find_library("X11") or "libX11.so.6")
    xext = ctypes.cdll.LoadLibrary(ctypes.util.find_library("Xext") or "libXext.so.6")
    xlib.XOpenDisplay.restype = ctypes.c_void_p
    xlib.XOpenDisplay.argtypes = [ctypes.c_char_p]
    xlib.XQueryTree.argtypes = [ctypes.c_void_p, ctypes.c_ulong, *[ctypes.c_void_p] * 4]
    xlib.XFree.argtypes = [ctypes.c_void_p]
    xlib.XCloseDisplay.argtypes = [ctypes.c_void_p]
    xext.XShapeCombineRectangles.argtypes = [
        ctypes.c_void_p,
        ctypes.c_ulong,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
    ]
    display = xlib.XOpenDisplay(None)
    if not display:
        raise RuntimeError("the watermark cannot open its display to set the input shape")
    root, parent, children = ctypes.c_ulong(), ctypes.c_ulong(), ctypes.c_void_p()
    count = ctypes.c_uint()
    xlib.XQueryTree(
        display, window_id, ctypes.byref(root), ctypes.byref(parent), ctypes.byref(children), ctypes.byref(count)
    )
    if children:
        xlib.XFree(children)
    for window in {window_id, parent.value} - {root.value}:
        xext.XShapeCombineRectangles(display, window, _SHAPE_INPUT, 0, 0, None, 0, _SHAPE_SET, 0)
    xlib.XCloseDisplay(display)


def main(label: str) -> None:
    root = tkinter.Tk(className="sohogw-watermark")
    root.overrideredirect(True)
    width, height = root.winfo_screenwidth(), root.winfo_screenheight()
    root.geometry(f"{width}x{STRIP_HEIGHT}+0+{height - STRIP_HEIGHT}")
    text = tkinter.StringVar()
    tkinter.Label(
        root, textvariable=text, bg=BACKGROUND, fg=TEXT_COLOUR, font=("DejaVu Sans Mono", 11, "bold"), anchor="w"
    ).pack(fill="both", expand=True)

    def refresh() -> None:
        one = watermark_text(label, datetime.now(UTC)) + "      "
        text.set(one * (width // (len(one) * 8) + 1))
        root.after(_REFRESH_EVERY_MS, refresh)

    def stay_on_top() -> None:
        root.lift()
        root.after(_RAISE_EVERY_MS, stay_on_top)

    refresh()
    root.update()
    _clear_input_shape(root.winfo_id())
    stay_on_top()
    root.mainloop()


if __name__ == "__main__":
    main(sys.argv[1])
