/* The watermark the broker draws on every seat's display, so any screenshot names its agent.
 *
 * Usage: sohogw-seat-watermark HEIGHT BACKGROUND TEXT_COLOUR LABEL   (DISPLAY and XAUTHORITY from the environment;
 * run by the broker beside the app, as the seat user, never by the app). A strip HEIGHT pixels high along the bottom
 * of the screen shows "LABEL · 2026-11-25 22:50 UTC" repeated, redrawn when the minute changes, mapped again in its
 * place and raised above the app twice a second (the app may unmap or move it). Its input shape is empty (X Shape extension), so pointer events pass through to the app below, and
 * it is override-redirect, so it never takes the keyboard focus. The window's name (WM_NAME) carries the same text,
 * so a test or an operator can read what the strip says.
 *
 * Relabelling: each line on stdin replaces LABEL (a warm seat is started "not assigned" and handed to an agent
 * later). Once the X server has drawn the new text (XSync), "drawn\n" is written to stdout, and only then does the
 * broker hand the seat over. Starting a new strip and stopping the old one instead cost ~55 ms of every launch. Both
 * pipes are the broker's (root's, mode 0600), so the seat's other processes, the same user, cannot reopen them through
 * /proc/PID/fd to write a label or a "drawn" of their own. End of stdin (the broker went away) leaves the strip as it is.
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
#include <sys/prctl.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

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

/* Reads what stdin holds into `pending` and takes its last complete line as the new label; returns how many lines
 * it took (each is acknowledged once drawn), or -1 at end of input. A line longer than the buffer is cut. */
static int read_labels(char *label, size_t label_size, char *pending, size_t *pending_len, size_t pending_size) {
    char chunk[TEXT_MAX];
    ssize_t got = read(STDIN_FILENO, chunk, sizeof chunk);
    if (got <= 0) return -1;
    int lines = 0;
    for (ssize_t i = 0; i < got; i++) {
        if (chunk[i] == '\n') {
            pending[*pending_len] = '\0';
            to_latin1(pending, label, label_size);
            *pending_len = 0;
            lines++;
        } else if (*pending_len + 1 < pending_size) {
            pending[(*pending_len)++] = chunk[i];
        }
    }
    return lines;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s HEIGHT BACKGROUND TEXT_COLOUR LABEL\n", argv[0]);
        return 2;
    }
    int height = atoi(argv[1]);
    /* Not dumpable: the seat's other processes, the same Unix user, can then neither ptrace this one nor take its
     * pipes to the broker with pidfd_getfd (and so cannot read a label or answer "drawn" in its place). */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
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

    char label[TEXT_MAX / 2], one[TEXT_MAX], line[4 * TEXT_MAX], pending[TEXT_MAX / 2];
    size_t pending_len = 0;
    int reading = 1, unacknowledged = 0;
    to_latin1(argv[4], label, sizeof label);
    long shown_minute = -1;
    int baseline = (height + font->ascent - font->descent) / 2;
    int top = DisplayHeight(display, screen) - height;
    for (;;) {
        /* Back in its place and on top at every turn: the app (same X cookie) can unmap, move or cover the strip, and
         * a strip drawn unmapped shows nothing. Requests are handled in order, so the text drawn below lands on the
         * window as mapped here. */
        XMoveResizeWindow(display, strip, 0, top, (unsigned)width, (unsigned)height);
        XMapRaised(display, strip);
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
        if (unacknowledged) {
            XSync(display, False);  /* returns once the server has handled every request above: the text is drawn */
            XWindowAttributes shown;
            /* Confirmed only when the strip is mapped where it belongs; else the next turn maps and draws again. */
            if (XGetWindowAttributes(display, strip, &shown) && shown.map_state == IsViewable && shown.y == top)
                for (; unacknowledged > 0; unacknowledged--)
                    if (write(STDOUT_FILENO, "drawn\n", 6) != 6) return 1;
        } else {
            XFlush(display);
        }
        fd_set readable;
        FD_ZERO(&readable);
        FD_SET(ConnectionNumber(display), &readable);
        if (reading) FD_SET(STDIN_FILENO, &readable);
        struct timeval wait = {0, RAISE_EVERY_US};
        int highest = ConnectionNumber(display) > STDIN_FILENO ? ConnectionNumber(display) : STDIN_FILENO;
        if (select(highest + 1, &readable, NULL, NULL, &wait) > 0 && reading && FD_ISSET(STDIN_FILENO, &readable)) {
            int lines = read_labels(label, sizeof label, pending, &pending_len, sizeof pending);
            reading = lines >= 0;
            if (lines > 0) {
                shown_minute = -1;  /* redraw the text and rename the window */
                unacknowledged += lines;
            }
        }
    }
}
