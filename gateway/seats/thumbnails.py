"""Small pictures of this node's seats for the supervisors' screen wall: ONE view-only RFB connection per seat,
however many supervisors look.

One background thread refreshes, every ``interval`` seconds, only the seats somebody asked for in the last
``DEMAND_SECONDS``; a still screen costs a ``select`` (x11vnc answers an incremental request only when something
changed), a changed one a raw update and one JPEG of the screen reduced ``SCALE`` times. Every supervisor gets the
same bytes. A seat handed to another person gets a new connection (the key is the seat and its holder), so nobody
sees the previous holder's last picture. When nobody asks any more, the connections close and the thread ends.
"""

import io
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from PIL import Image

from desktop_broker.pool import PooledSeat
from desktop_broker.x11.rfb_screen_copy import ScreenCopy, ScreenCopyFailed

log = logging.getLogger(__name__)
SCALE = 4
"""1280x800 becomes 320x200: a tile of a 50-seat grid on one screen."""
JPEG_QUALITY = 60
DEMAND_SECONDS = 30.0
"""Longer than a loaded grid takes to come round to a seat again, so its connection is not dropped and reopened."""
FIRST_PICTURE_WAIT_SECONDS = 2.0


@dataclass
class _Tile:
    copy: ScreenCopy
    asked_at: float
    jpeg: bytes | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def encode(copy: ScreenCopy) -> bytes:
    """The copy's screen reduced ``SCALE`` times, as JPEG."""
    frame = cast(bytes, copy.frame)  # Pillow reads any buffer; a copy of 4 MB per picture would be waste
    image = Image.frombuffer("RGB", (copy.width, copy.height), frame, "raw", "BGRX", 0, 1).reduce(SCALE)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


class SeatThumbnails:
    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval, self._clock = interval, clock
        self._tiles: dict[tuple[str, str], _Tile] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self.refreshes = 0
        self.cpu_seconds = 0.0
        """CPU time spent reading and encoding pictures (this class's own cost, for the bench and metrics)."""

    def picture(self, seat: PooledSeat) -> bytes | None:
        """The seat's latest picture (JPEG), or None when it cannot be read now; keeps it refreshed for a while."""
        if seat.holder is None:
            return None
        key = (seat.seat_id, seat.holder)
        with self._lock:
            tile = self._tiles.get(key)
            if tile is None:
                tile = self._tiles[key] = _Tile(ScreenCopy(seat.process.rfb_address, seat.passwords.view_only), 0.0)
            tile.asked_at = self._clock()
            if not self._stopped.is_set() and (self._thread is None or not self._thread.is_alive()):
                self._thread = threading.Thread(target=self._run, name="seat-thumbnails", daemon=True)
                self._thread.start()
        if tile.jpeg is None:
            self._sample(tile, FIRST_PICTURE_WAIT_SECONDS)
        return tile.jpeg

    def connections(self) -> int:
        """Open upstream connections (one per seat being looked at)."""
        with self._lock:
            return len(self._tiles)

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            tiles, self._tiles = list(self._tiles.values()), {}
        for tile in tiles:
            with tile.lock:
                tile.copy.close()

    def _sample(self, tile: _Tile, wait: float) -> None:
        with tile.lock:
            started = time.thread_time()
            try:
                if tile.copy.refresh(wait):
                    tile.jpeg = encode(tile.copy)
            except (ScreenCopyFailed, OSError) as error:  # a seat going away: its tile is dropped when unasked
                log.info("seat picture unreadable: %s", error)
            self.refreshes += 1
            self.cpu_seconds += time.thread_time() - started

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            with self._lock:
                now = self._clock()
                unasked = [key for key, tile in self._tiles.items() if now - tile.asked_at > DEMAND_SECONDS]
                dropped = [self._tiles.pop(key) for key in unasked]
                tiles = list(self._tiles.values())
                if not tiles:
                    self._thread = None
            for tile in dropped:
                with tile.lock:
                    tile.copy.close()
            if not tiles:
                return
            for tile in tiles:
                self._sample(tile, 0.0)
