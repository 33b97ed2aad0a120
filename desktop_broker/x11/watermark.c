/* The watermark the broker draws on every seat's display, so any screenshot names its agent.
 *
 * Usage: sohogw-seat-watermark LABEL   (DISPLAY and XAUTHORITY from the environment; run by the broker beside the
 * app, as the seat user, never by the app). A strip STRIP_HEIGHT pixels high along the bottom of the screen shows
 * "LABEL · 2026-11-25 22:50 UTC" repeated, redrawn when the minute changes, raised above the app twice a second.
 * Its input shape is empty (X Shape extension), so pointer events pass through to the app below, and it is
 * override-redirect, so it never takes the keyboard focus. The window's name (WM_NAME) carries the same text, so a
 * test or an operator can read what the strip says.
 *
 * Why C and not Python/Tk: one of these per seat costs about 1 MiB of PSS instead of 11.7 MiB (docs/seats.md).
 * The colours and height are passed by desktop_broker/x11/watermark.py, their one definition.
 * Text is drawn with the X server's built-in "fixed" font (Latin-1): a label outside Latin-1 shows '?' for
 * those characters. If the display goes away or a client kills this one, Xlib exits the process, and the broker
 * reports the seat as crashed.
 */
#include <X11/Xlib.h>
#include <X11/Xutil.h>
#include <X11/extensions/shape.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>

#define RAISE_EVERY_US 500000
#define TEXT_MAX 512

/* UTF-8 to Latin-1 (the built-in font's encoding); code points above U+00FF become '?'. */
static void to_latin1(const char *in, char *out, size_t size) {
    size_t n = 0;
    const unsigned char *s = (const unsigned char *)in;
    while (*s && n + 1 < size) {
        unsigned int code = *s;
        int extra = code >= 0xF0 ? 3 : code >= 0xE0 ? 2 : code >= 0xC0 ? 1 : 0;
        if (extra) {
            code &= 0x3F >> extra;
            for (int i = 0; i < extra && (s[1] & 0xC0) == 0x80; i++) code = (code << 6) | (*++s & 0x3F);
        }
        out[n++] = (char)(code <= 0xFF ? code : '?');
        s++;
    }
    out[n] = '\0';
}

static unsigned long colour(Display *display, const char *spec) {
    XColor exact, screen;
    Colormap map = DefaultColormap(display, DefaultScreen(display));
    if (!XAllocNamedColor(display, map, spec, &screen, &exact)) {
        fprintf(stderr, "watermark: unknown colour %s\n", spec);
        exit(2);
    }
    return screen.pixel;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s HEIGHT BACKGROUND TEXT_COLOUR LABEL\n", argv[0]);
        return 2;
    }
    int height = atoi(argv[1]);
    Display *display = XOpenDisplay(NULL);
    if (!display || height <= 0) {
        fprintf(stderr, "watermark: cannot open the display or bad height\n");
        return 1;
    }
    int screen = DefaultScreen(display);
    int width = DisplayWidth(display, screen);
    XSetWindowAttributes attributes = {0};
    attributes.override_redirect = True;
    attributes.background_pixel = colour(display, argv[2]);
    attributes.event_mask = ExposureMask;
    Window strip = XCreateWindow(display, RootWindow(display, screen), 0, DisplayHeight(display, screen) - height,
                                 (unsigned)width, (unsigned)height, 0, CopyFromParent, InputOutput, CopyFromParent,
                                 CWOverrideRedirect | CWBackPixel | CWEventMask, &attributes);
    XClassHint class_hint = {"sohogw-watermark", "Sohogw-watermark"};
    XSetClassHint(display, strip, &class_hint);
    XShapeCombineRectangles(display, strip, ShapeInput, 0, 0, NULL, 0, ShapeSet, Unsorted);
    XFontStruct *font = XLoadQueryFont(display, "fixed");
    if (!font) {
        fprintf(stderr, "watermark: the X server has no 'fixed' font\n");
        return 1;
    }
    GC gc = XCreateGC(display, strip, 0, NULL);
    XSetFont(display, gc, font->fid);
    XSetForeground(display, gc, colour(display, argv[3]));
    XMapRaised(display, strip);

    char label[TEXT_MAX / 2], one[TEXT_MAX], line[4 * TEXT_MAX];
    to_latin1(argv[4], label, sizeof label);
    long shown_minute = -1;
    int baseline = (height + font->ascent - font->descent) / 2;
    for (;;) {
        time_t now = time(NULL);
        int redraw = now / 60 != shown_minute;
        while (XPending(display)) {
            XEvent event;
            XNextEvent(display, &event);
            redraw |= event.type == Expose;
        }
        if (redraw) {
            char when[32];
            strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", gmtime(&now));
            snprintf(one, sizeof one, "%s \xb7 %s      ", label, when);  /* U+00B7 middle dot in Latin-1 */
            line[0] = '\0';
            while (XTextWidth(font, line, (int)strlen(line)) < width && strlen(line) + strlen(one) < sizeof line)
                strcat(line, one);
            XClearWindow(display, strip);
            XDrawString(display, strip, gc, 4, baseline, line, (int)strlen(line));
            XDrawString(display, strip, gc, 5, baseline, line, (int)strlen(line));  /* bold: drawn twice */
            if (now / 60 != shown_minute) {
                one[strlen(one) - 6] = '\0';
                XStoreName(display, strip, one);
                shown_minute = now / 60;
            }
        }
        XRaiseWindow(display, strip);
        XFlush(display);
        fd_set readable;
        FD_ZERO(&readable);
        FD_SET(ConnectionNumber(display), &readable);
        struct timeval wait = {0, RAISE_EVERY_US};
        select(ConnectionNumber(display) + 1, &readable, NULL, NULL, &wait);
    }
}
