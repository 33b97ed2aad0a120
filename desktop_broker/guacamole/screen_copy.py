"""A copy of a Guacamole seat's screen kept over one read-only join of its live guacd connection: the supervisors'
screen wall reads it, as it reads an X11 seat through `desktop_broker.x11.rfb_screen_copy.ScreenCopy`.

The join is made straight to guacd (``select`` the seat's ``$…`` connection id, the handshake, ``connect`` with
`JOIN_SETTINGS`: ``read-only=true`` and ``disable-paste=true``), so guacd registers no keyboard, pointer,
clipboard, file or size handler for it (``src/protocols/rdp/user.c``), and this client sends nothing but its
handshake answers, ``sync`` (the frame answer), ``nop`` (keep-alive) and a final ``disconnect`` — the allow-list
server.js applies to a supervisor's join (``lib/view-only.js``). No input can leave it: view-only twice, as the RFB
copy is.

What guacd sends is applied to the default layer (0) and to every buffer and layer a ``copy`` may read from:
``size``, ``img`` + ``blob`` + ``end`` streams (PNG, JPEG and WebP: what Pillow decodes, advertised so that guacd
keeps the encodings it already uses for the agent, as it encodes once for all users of a connection), ``copy``,
``rect`` + ``cfill`` and ``dispose``; ``cursor``, ``mouse``, audio and the rest only matter to a person looking,
and are skipped. guacd 1.6.0's display code (``src/libguac/display*.c``) uses only the compositing modes OVER
(drawing), SRC, ROUT and RATOP (clearing); any other is drawn as OVER.

A reader thread answers every ``sync`` as soon as it has read it: guacd paces the frames and picks the image quality
of the whole connection — the agent's too — by its slowest user's answers (``guac_client_get_processing_lag``), so a
join that answered only when the wall asks (every ~2 s) would slow the agent's screen. It only reads: the images are
queued undecoded (their headers read), and `refresh` draws the whole frames queued since the last one, decoding only
the images no later drawing covers (`drawing_queue.needed`), so a screen that never stops changing costs reading its
bytes and one decode of each changed region per refresh, not one per frame guacd sends. The join stays: joining
again at each refresh would make guacd send the whole screen each time, and guacd holds a join's first picture
until no frame is in progress, seconds on such a screen (measured with a 25-frame/s movie, 0.4 s to over 2 s).
It holds two layer-sized RGBA images (the default layer and guacd's copy of its last frame), 8 MB at 1280x800, and
at most `QUEUED_BYTES` of undrawn images.
"""

import base64
import binascii
import contextlib
import io
import logging
import socket
import threading
import time

from PIL import Image, UnidentifiedImageError

from desktop_broker.guacamole.drawing_queue import (
    RATOP,
    ROUT,
    SRC,
    Box,
    Copy,
    Dispose,
    DrawImage,
    Fill,
    Layers,
    Operation,
    Size,
    needed,
)
from desktop_broker.guacamole.parameters import JOIN_SETTINGS
from desktop_broker.recording.wire import (
    ClientHandshake,
    HandshakeRefused,
    InstructionReader,
    WireError,
    encode,
    handshake,
)

HANDSHAKE_TIMEOUT = 5.0
KEEPALIVE_SECONDS = 5.0
"""guacd drops a user silent for 15 s (GUACD_TIMEOUT); on a still screen it sends nothing to answer."""
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp")
JOINING_USER = ClientHandshake(size=(1280, 800, 96), image_types=IMAGE_TYPES, timezone="UTC")
"""The joining user's own screen size is only said: guacd draws the owner's, whatever a read-only joiner asks."""
MAX_PIXELS = 16 * 1024 * 1024
"""All layers and buffers of one join together (64 MB); guacd sizing them beyond this ends the join."""
QUEUED_BYTES = 16 * 1024 * 1024
"""Undrawn images a join keeps between two refreshes (compressed); past it, what later ones cover is dropped, and
a queue still larger ends the join (the next refresh joins again, from the whole screen)."""
_DEFAULT_LAYER = 0

log = logging.getLogger(__name__)


def _image_bytes(queue: list[Operation]) -> int:
    return sum(operation.size_bytes for operation in queue if isinstance(operation, DrawImage))


class JoinFailed(Exception):
    """guacd refused the join or ended it (the seat's connection closed); the next refresh joins again."""


class GuacdScreenCopy:
    """The latest picture of one Guacamole seat's screen (its default layer)."""

    def __init__(self, guacd: tuple[str, int], connection_id: str) -> None:
        if not connection_id.startswith("$"):
            raise ValueError(f"{connection_id!r} is not a guacd connection id (they start with '$')")
        self._guacd, self._connection_id = guacd, connection_id
        self._sock: socket.socket | None = None
        self._send_lock = threading.Lock()
        self._frame = threading.Condition()
        """Guards the queue, what is known of the layers before it, the frame count and the failure; notified at
        each ``sync``."""
        self._queued: list[Operation] = []
        self._whole = self._queued_bytes = 0
        """How many queued operations make whole frames (up to the last ``sync``); the bytes of all queued images."""
        self._before = Layers({}, set())
        self._streams: dict[str, tuple[int, int, str, int, int, list[str]]] = {}
        self._path: dict[int, Box] = {}
        self._frames = self._frames_seen = 0
        self._failure: str | None = None
        self._drawing = threading.Lock()
        """Guards the layers, which only `refresh` draws."""
        self._layers: dict[int, Image.Image] = {}
        self._drawn = False
        self.cpu_seconds = 0.0
        """CPU time spent reading, decoding and drawing, in whichever thread (the wall's cost of this seat)."""

    @property
    def width(self) -> int:
        return self._layers[_DEFAULT_LAYER].width if _DEFAULT_LAYER in self._layers else 0

    @property
    def height(self) -> int:
        return self._layers[_DEFAULT_LAYER].height if _DEFAULT_LAYER in self._layers else 0

    def refresh(self, wait: float = 0.0) -> bool:
        """Whether the picture changed since the last refresh (waiting up to ``wait`` s for a new frame): draws the
        whole frames guacd sent since."""
        if self._sock is None:
            self._join()
        started = time.thread_time()
        try:
            with self._frame:
                self._frame.wait_for(lambda: self._frames > self._frames_seen or self._failure is not None, wait)
                if self._failure is not None:
                    raise JoinFailed(self._failure)
                self._frames_seen = self._frames
                frames, self._queued, self._whole = self._queued[: self._whole], self._queued[self._whole :], 0
                self._queued_bytes = _image_bytes(self._queued)
                # Judged here, under the lock: the rest of the queue starts from what these leave.
                queue, self._before = needed(frames, self._before)
            with self._drawing:
                for operation in queue:
                    self._draw_operation(operation)
                changed, self._drawn = self._drawn, False
                return changed and _DEFAULT_LAYER in self._layers
        except JoinFailed as error:
            self.close()
            raise JoinFailed(f"{self._connection_id}: {error}") from None
        finally:
            self._count_cpu(started)

    def reduced(self, factor: int) -> Image.Image:
        """The screen reduced ``factor`` times, as RGB (a transparent layer shows black, as on a blank canvas)."""
        with self._drawing:
            layer = self._layers[_DEFAULT_LAYER].reduce(factor)
        return layer.convert("RGB")

    def close(self) -> None:
        with self._frame:
            self._close_locked()

    def _close_locked(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            # guacd notices a closed socket only at its next write to it; disconnect ends the user at once.
            with contextlib.suppress(OSError):
                self._send_on(sock, "disconnect")
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._queued, self._whole, self._queued_bytes, self._before = [], 0, 0, Layers({}, set())
        self._streams, self._path = {}, {}
        self._failure = None
        with self._drawing:
            self._layers = {}

    def _join(self) -> None:
        try:
            sock = socket.create_connection(self._guacd, timeout=HANDSHAKE_TIMEOUT)
        except OSError as error:
            raise JoinFailed(f"guacd at {self._guacd[0]}:{self._guacd[1]} did not answer: {error}") from None
        try:
            _, reader, pending = handshake(sock, self._connection_id, JOIN_SETTINGS, JOINING_USER, HANDSHAKE_TIMEOUT)
        except (OSError, WireError, HandshakeRefused) as error:
            sock.close()
            raise JoinFailed(f"guacd refused to join {self._connection_id}: {error}") from None
        sock.settimeout(KEEPALIVE_SECONDS)
        self._sock, self._failure = sock, None
        self._frames = self._frames_seen = 0
        threading.Thread(
            target=self._read, args=(sock, reader, pending), name=f"guacd-join-{self._connection_id}", daemon=True
        ).start()

    def _send_on(self, sock: socket.socket, *elements: str) -> None:
        with self._send_lock:
            sock.sendall(encode(*elements))

    def _count_cpu(self, since: float) -> float:
        """Adds this thread's CPU time since ``since`` to `cpu_seconds`; returns the thread's CPU time now."""
        now = time.thread_time()
        with self._frame:
            self.cpu_seconds += now - since
        return now

    def _read(self, sock: socket.socket, reader: InstructionReader, pending: list[tuple[str, ...]]) -> None:
        """Answer syncs, keep the connection alive and queue the frames, until guacd or `close` ends it."""
        last_sent = time.monotonic()
        instructions = pending
        counted = time.thread_time()
        try:
            while True:
                syncs = [instruction[1] for instruction in instructions if instruction[0] == "sync"]
                for timestamp in syncs:  # answered before queueing: only our reading shows as lag
                    self._send_on(sock, "sync", timestamp)
                if syncs:
                    last_sent = time.monotonic()
                elif time.monotonic() - last_sent >= KEEPALIVE_SECONDS:
                    self._send_on(sock, "nop")
                    last_sent = time.monotonic()
                self._queue_all(sock, instructions)
                counted = self._count_cpu(counted)
                try:
                    data = sock.recv(1 << 20)
                except TimeoutError:
                    instructions = []  # a still screen: only the keep-alive is due
                    continue
                if not data:
                    raise JoinFailed("guacd closed the connection")
                instructions = reader.feed(data)
        except Exception as error:  # whatever ends the reading (a malformed frame too) ends the join, never silently
            if not isinstance(error, OSError | WireError | JoinFailed | ValueError | IndexError):
                log.exception("the wall's join of a seat failed unexpectedly")
            with self._frame:
                if self._sock is sock:
                    self._failure = str(error)
                self._frame.notify_all()
        finally:
            self._count_cpu(counted)

    def _queue_all(self, sock: socket.socket, instructions: list[tuple[str, ...]]) -> None:
        with self._frame:
            if self._sock is not sock:
                raise JoinFailed("closed")
            for instruction in instructions:
                opcode = instruction[0]
                if opcode == "sync":
                    self._frames += 1
                    self._whole = len(self._queued)
                    if self._queued_bytes > QUEUED_BYTES:
                        self._prune_locked()
                    self._frame.notify_all()
                elif opcode in ("error", "disconnect"):
                    raise JoinFailed(f"guacd ended the join: {' '.join(instruction)}")
                else:
                    self._queue(opcode, instruction[1:])

    def _prune_locked(self) -> None:
        """Nobody drew the queue for long: drop what later frames cover, or end the join if that is not enough."""
        frames, _ = needed(self._queued[: self._whole], self._before)
        self._queued[: self._whole] = frames
        self._whole = len(frames)
        self._queued_bytes = _image_bytes(self._queued)
        if self._queued_bytes > QUEUED_BYTES:
            raise JoinFailed(f"over {QUEUED_BYTES} bytes of images left undrawn")

    def _queue(self, opcode: str, values: tuple[str, ...]) -> None:
        if opcode == "size":
            self._queued.append(Size(int(values[0]), int(values[1]), int(values[2])))
        elif opcode == "img":
            stream, mode, target, mimetype, left, top = values
            self._streams[stream] = (int(mode), int(target), mimetype, int(left), int(top), [])
        elif opcode == "blob" and values[0] in self._streams:
            self._streams[values[0]][5].append(values[1])
        elif opcode == "end" and values[0] in self._streams:
            self._queue_image(*self._streams.pop(values[0]))
        elif opcode == "copy":
            source, x, y, width, height, mask, destination, to_x, to_y = map(int, values)
            self._queued.append(Copy(source, (x, y, x + width, y + height), mask, destination, (to_x, to_y)))
        elif opcode == "rect":
            layer, x, y, width, height = map(int, values)
            self._path[layer] = (x, y, x + width, y + height)
        elif opcode == "cfill":
            mask, layer, red, green, blue, alpha = map(int, values)
            box = self._path.pop(layer, None)
            width, height = (0, 0) if box is None else (box[2] - box[0], box[3] - box[1])
            if box is not None and width > 0 and height > 0 and width * height <= MAX_PIXELS:
                self._queued.append(Fill(mask, layer, box, (red, green, blue, alpha)))
        elif opcode == "dispose":
            self._queued.append(Dispose(int(values[0])))

    def _queue_image(self, mask: int, index: int, mimetype: str, x: int, y: int, blobs: list[str]) -> None:
        """Queue the image with its header read: its size and whether it is opaque, not its pixels."""
        if mimetype not in IMAGE_TYPES:
            return
        try:
            data = b"".join(base64.b64decode(blob) for blob in blobs)
            image = Image.open(io.BytesIO(data))
        except (binascii.Error, UnidentifiedImageError, Image.DecompressionBombError, OSError) as error:
            raise JoinFailed(f"guacd sent an unreadable {mimetype}: {error}") from None
        if image.width * image.height > MAX_PIXELS:  # judged on the header, before a pixel is decoded
            raise JoinFailed(f"guacd sent a {image.width}x{image.height} {mimetype}: over {MAX_PIXELS} pixels")
        opaque = "A" not in image.getbands() and "transparency" not in image.info
        box = (x, y, x + image.width, y + image.height)
        self._queued.append(DrawImage(mask, index, box, image, opaque, len(data)))
        self._queued_bytes += len(data)

    def _draw_operation(self, operation: Operation) -> None:
        if isinstance(operation, Size):
            self._size(operation.layer, operation.width, operation.height)
        elif isinstance(operation, DrawImage):
            self._image(operation)
        elif isinstance(operation, Copy):
            self._copy(operation.source, operation.box, operation.mask, operation.layer, operation.at)
        elif isinstance(operation, Fill):
            self._fill(operation)
        else:
            self._layers.pop(operation.layer, None)

    def _layer(self, index: int) -> Image.Image:
        if index not in self._layers:
            self._layers[index] = Image.new("RGBA", (0, 0))
        return self._layers[index]

    def _size(self, index: int, width: int, height: int) -> None:
        others = sum(layer.width * layer.height for kept, layer in self._layers.items() if kept != index)
        if others + width * height > MAX_PIXELS:
            raise JoinFailed(f"guacd sized layer {index} to {width}x{height}: the layers pass {MAX_PIXELS} pixels")
        resized = Image.new("RGBA", (width, height))
        resized.paste(self._layer(index), (0, 0))  # the protocol keeps what fits, the rest is transparent
        self._layers[index] = resized
        self._drawn |= index == _DEFAULT_LAYER

    def _image(self, operation: DrawImage) -> None:
        image = operation.picture
        try:
            image.load()
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as error:
            raise JoinFailed(f"guacd sent an unreadable {image.format} image: {error}") from None
        self._draw(
            operation.layer, image.convert("RGB" if operation.opaque else "RGBA"), operation.mask, operation.box[:2]
        )

    def _copy(self, source: int, box: Box, mask: int, index: int, at: tuple[int, int]) -> None:
        if source in self._layers:
            layer = self._layers[source]
            within = (max(box[0], 0), max(box[1], 0), min(box[2], layer.width), min(box[3], layer.height))
            if within[0] < within[2] and within[1] < within[3]:  # only what the source has: no crop larger than it
                self._draw(index, layer.crop(within), mask, (at[0] + within[0] - box[0], at[1] + within[1] - box[1]))

    def _fill(self, operation: Fill) -> None:
        box, colour = operation.box, operation.colour
        size = (box[2] - box[0], box[3] - box[1])
        source = Image.new("RGB", size, colour[:3]) if colour[3] == 255 else Image.new("RGBA", size, colour)
        self._draw(operation.layer, source, operation.mask, box[:2])

    def _draw(self, index: int, source: Image.Image, mask: int, at: tuple[int, int]) -> None:
        alpha: tuple[int, int] = (255, 255) if source.mode == "RGB" else source.getchannel("A").getextrema()  # type: ignore[assignment]
        if (mask == ROUT and alpha[0] == 255) or (mask == RATOP and alpha[1] == 0):
            # What guacd sends to clear a region of a layer with transparency: ROUT with an opaque source keeps
            # nothing of the destination, RATOP keeps it only where the source is opaque (guacd's is clear).
            source, mask, alpha = Image.new("RGBA", source.size), SRC, (0, 0)
        layer = self._layer(index)
        right, bottom = at[0] + source.width, at[1] + source.height
        if index < 0 and (right > layer.width or bottom > layer.height):
            # Buffers grow to fit what is drawn into them (guacd never sizes its last-frame buffers).
            self._size(index, max(right, layer.width), max(bottom, layer.height))
            layer = self._layers[index]
        if mask == SRC or alpha[0] == 255:
            layer.paste(source, at)
        else:
            layer.alpha_composite(source, at)
        self._drawn |= index == _DEFAULT_LAYER
