"""Small pictures of this node's seats for the supervisors' screen wall: ONE view-only connection per seat, however
many supervisors look — an RFB connection to an X11 seat's x11vnc (view-only password), a read-only join of a
Guacamole seat's live guacd connection.

One background thread refreshes, every ``interval`` seconds, only the seats somebody asked for in the last
``DEMAND_SECONDS``; a still screen costs a ``select`` (x11vnc answers an incremental request only when something
changed; a guacd join's own thread has queued nothing), a changed one the decoding of what changed (a guacd join decodes
its queued frames then, each region once) and one JPEG of the screen reduced ``SCALE`` times. Every supervisor gets the
same bytes. A seat handed to another person gets a new connection (the key is the X11 seat and its holder, or the
Guacamole lease and its guacd connection), so nobody sees the previous holder's last picture. When nobody asks any more,
the connections close and the thread ends.
"""

import io
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from PIL import Image

from desktop_broker.guacamole.screen_copy import GuacdScreenCopy, JoinFailed
from desktop_broker.pool import PooledSeat
from desktop_broker.x11.rfb_screen_copy import ScreenCopy, ScreenCopyFailed

log = logging.getLogger(__name__)
SCALE = 4
"""1280x800 becomes 320x200: a tile of a 50-seat grid on one screen."""
JPEG_QUALITY = 60
DEMAND_SECONDS = 30.0
"""Longer than a loaded grid takes to come round to a seat again, so its connection is not dropped and reopened."""
FIRST_PICTURE_WAIT_SECONDS = 2.0


class ScreenSource(Protocol):
    """A seat's screen kept up to date over one view-only connection (`ScreenCopy`, `GuacdScreenCopy`)."""

    cpu_seconds: float
    """CPU time it spent reading the screen so far, in whichever thread."""

    def refresh(self, wait: float = 0.0) -> bool: ...

    def reduced(self, factor: int) -> Image.Image: ...

    def close(self) -> None: ...


@dataclass
class _Tile:
    copy: ScreenSource
    asked_at: float
    jpeg: bytes | None = None
    cpu_counted: float = 0.0
    """The copy's ``cpu_seconds`` already added to the total."""
    lock: threading.Lock = field(default_factory=threading.Lock)


def encode(copy: ScreenSource) -> bytes:
    """The copy's screen reduced ``SCALE`` times, as JPEG."""
    out = io.BytesIO()
    copy.reduced(SCALE).save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


class SeatThumbnails:
    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval, self._clock = interval, clock
        self._tiles: dict[tuple[str, str, str], _Tile] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self.refreshes = 0
        self.cpu_seconds = 0.0
        """CPU time spent reading and encoding pictures (this class's own cost, for the bench and metrics)."""

    def picture(self, seat: PooledSeat) -> bytes | None:
        """The X11 seat's latest picture (JPEG), or None when it cannot be read now; keeps it refreshed a while."""
        if seat.holder is None:
            return None
        address, password = seat.process.rfb_address, seat.passwords.view_only
        return self._picture(("x11", seat.seat_id, seat.holder), lambda: ScreenCopy(address, password))

    def joined_picture(self, guacd: tuple[str, int], lease_id: str, connection_id: str) -> bytes | None:
        """The Guacamole seat's latest picture (JPEG) through a read-only join of its guacd connection, or None when
        it cannot be read now; keeps it refreshed a while."""
        return self._picture(("guacamole", lease_id, connection_id), lambda: GuacdScreenCopy(guacd, connection_id))

    def _picture(self, key: tuple[str, str, str], connect: Callable[[], ScreenSource]) -> bytes | None:
        with self._lock:
            tile = self._tiles.get(key)
            if tile is None:
                tile = self._tiles[key] = _Tile(connect(), 0.0)
            tile.asked_at = self._clock()
            if not self._stopped.is_set() and (self._thread is None or not self._thread.is_alive()):
                self._thread = threading.Thread(target=self._run, name="seat-thumbnails", daemon=True)
                self._thread.start()
        if tile.jpeg is None:
            self._sample(tile, FIRST_PICTURE_WAIT_SECONDS)
        return tile.jpeg

    def joined_leases(self) -> set[tuple[str, str]]:
        """(lease id, guacd connection id) of every Guacamole seat joined now."""
        with self._lock:
            return {(lease_id, connection_id) for kind, lease_id, connection_id in self._tiles if kind == "guacamole"}

    def keep_joins(self, live: set[tuple[str, str]]) -> None:
        """Close the joins of Guacamole connections not in ``live`` (lease id, connection id) at once: guacd keeps a
        connection while any user is joined, so a join left open would keep the RDP session of an ended lease."""
        with self._lock:
            ended = [key for key in self._tiles if key[0] == "guacamole" and key[1:] not in live]
            tiles = [self._tiles.pop(key) for key in ended]
        for tile in tiles:
            with tile.lock:
                tile.copy.close()

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
            encoding = 0.0  # the reading's own CPU is the copy's `cpu_seconds`
            try:
                if tile.copy.refresh(wait):
                    started = time.thread_time()
                    tile.jpeg = encode(tile.copy)
                    encoding = time.thread_time() - started
                elif tile.jpeg is None:
                    # guacd now and then answers a join of a still screen with a sync but no picture (about one
                    # join in eight here), and sends none until the screen changes: the next ask joins afresh.
                    tile.copy.close()
            except (ScreenCopyFailed, JoinFailed, OSError, ValueError, KeyError) as error:
                log.info("seat picture unreadable: %s", error)  # a seat going away, or a screen of no size
            self.refreshes += 1
            read, tile.cpu_counted = tile.copy.cpu_seconds - tile.cpu_counted, tile.copy.cpu_seconds
            self.cpu_seconds += read + encoding

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
                if tile.jpeg is not None:  # a seat with no picture yet is read when next asked, waiting for it
                    self._sample(tile, 0.0)
