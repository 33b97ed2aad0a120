"""Writing a seat's Xauthority files ourselves, so the cookie never appears in any process's argv.

`xauth add DISPLAY MIT-MAGIC-COOKIE-1 COOKIE` puts the cookie on a command line that every local user can
read in `/proc/PID/cmdline` while it runs. The file format is small (libXau's `XauWriteAuth`): per entry a
16-bit family, then address, display number, auth name and auth data, each as a 16-bit big-endian length
followed by the bytes.
"""

import os
import struct
from pathlib import Path

# FamilyWild (Xauth.h) matches any host; the display number still has to match unless it is empty.
FAMILY_WILD = 0xFFFF
AUTH_NAME = b"MIT-MAGIC-COOKIE-1"


def _counted(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


def xauthority_entry(display_number: int | None, cookie_hex: str) -> bytes:
    """One entry for the seat's cookie; `display_number=None` matches every display (the server's file)."""
    number = b"" if display_number is None else str(display_number).encode()
    return (
        struct.pack(">H", FAMILY_WILD)
        + _counted(b"")
        + _counted(number)
        + _counted(AUTH_NAME)
        + _counted(bytes.fromhex(cookie_hex))
    )


def write_cookie(path: Path, display_number: int | None, cookie_hex: str, uid: int = -1, gid: int = -1) -> None:
    """An Xauthority file, created 0600 and owned by `uid`/`gid`, holding the seat's cookie.

    Created with O_EXCL after removing any old file, so a link planted in its place is never followed.
    """
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, xauthority_entry(display_number, cookie_hex))
        os.fchown(fd, uid, gid)
    finally:
        os.close(fd)
