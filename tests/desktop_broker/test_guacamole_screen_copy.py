"""The wall's join when nobody refreshes it for long, against a guacd of the test's making that sends as fast as the
socket takes (the real guacd, xrdp and a movie are in tests/gateway/seats/test_guacamole_wall.py): the undrawn
images it keeps stay under `QUEUED_BYTES` while later frames cover the earlier ones, and past it the join ends."""

import base64
import contextlib
import io
import random
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from PIL import Image

from desktop_broker.guacamole.screen_copy import QUEUED_BYTES, GuacdScreenCopy, JoinFailed
from desktop_broker.recording.wire import InstructionReader, encode
from gateway.seats.thumbnails import SCALE, SeatThumbnails

NOISE = 600
"""Noise of 600x600 pixels is a PNG of ~1 MB: twenty of them pass `QUEUED_BYTES`."""
FRAMES = 20


def noise_png() -> tuple[bytes, Image.Image]:
    picture = Image.frombytes("RGB", (NOISE, NOISE), random.randbytes(NOISE * NOISE * 3))
    out = io.BytesIO()
    picture.save(out, "PNG", compress_level=1)
    return out.getvalue(), picture


def sized(screen: tuple[int, int]) -> bytes:
    """The default layer's size, as guacd sends it first to a join that will see a picture."""
    return encode("size", "0", *map(str, screen))


def frame(png: bytes, stream: int, at: tuple[int, int], timestamp: int) -> bytes:
    """One frame: the PNG drawn on the default layer at ``at``, and its ``sync``."""
    blob = base64.b64encode(png).decode()
    return (
        encode("img", str(stream), "14", "0", "image/png", str(at[0]), str(at[1]))
        + encode("blob", str(stream), blob)
        + encode("end", str(stream))
        + encode("sync", str(timestamp))
    )


class FakeGuacd:
    """Answers each join's handshake in turn, sends that join's instructions all at once and counts the ``sync``
    answers it gets back."""

    def __init__(self, frames: list[bytes], *later_joins: list[bytes]) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = self._listener.getsockname()
        self._joins = [frames, *later_joins]
        self.answered = threading.Semaphore(0)
        self.joins = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        for frames in self._joins:
            self._serve_one(frames)

    def _serve_one(self, frames: list[bytes]) -> None:
        connection, _ = self._listener.accept()
        self.joins += 1
        reader = InstructionReader()
        with connection:
            seen: list[tuple[str, ...]] = []
            while not any(instruction[0] == "select" for instruction in seen):
                seen += reader.feed(connection.recv(65536))
            connection.sendall(encode("args", "VERSION_1_5_0", "read-only"))
            while not any(instruction[0] == "connect" for instruction in seen):
                seen += reader.feed(connection.recv(65536))
            connection.sendall(encode("ready", "$fake"))
            sender = threading.Thread(target=self._send, args=(connection, frames), daemon=True)
            sender.start()
            with contextlib.suppress(OSError):  # a join that ended closed its end
                while data := connection.recv(65536):
                    for instruction in reader.feed(data):
                        if instruction[0] == "sync":
                            self.answered.release()
            sender.join()

    def _send(self, connection: socket.socket, frames: list[bytes]) -> None:
        with contextlib.suppress(OSError):  # a join that ended midway (past the bound) closed its end
            connection.sendall(b"".join(frames))

    def close(self) -> None:
        self._listener.close()


@contextmanager
def joined(screen: tuple[int, int], frames: list[bytes]) -> Iterator[tuple[GuacdScreenCopy, FakeGuacd]]:
    guacd = FakeGuacd([sized(screen), *frames])
    copy = GuacdScreenCopy(guacd.address, "$fake")
    try:
        yield copy, guacd
    finally:
        copy.close()
        guacd.close()


def answered_all(guacd: FakeGuacd, frames: int) -> int:
    """How many of the frames' syncs the join answered, waiting up to a second for each."""
    answered = 0
    while answered < frames and guacd.answered.acquire(timeout=1.0):
        answered += 1
    return answered


def test_frames_that_cover_each_other_are_kept_one_deep_while_nobody_refreshes() -> None:
    pictures = [noise_png() for _ in range(2)]
    frames = [frame(pictures[n % 2][0], n, (0, 0), n) for n in range(FRAMES)]
    assert sum(len(png) for png, _ in pictures) * FRAMES / 2 > QUEUED_BYTES
    with joined((NOISE, NOISE), frames) as (copy, guacd):
        copy.refresh(0.0)  # joins; nothing is drawn until the next refresh
        assert answered_all(guacd, FRAMES) == FRAMES, "a frame went unanswered while nobody drew"
        assert copy.refresh(0.0)
        assert copy.reduced(1).tobytes() == pictures[(FRAMES - 1) % 2][1].tobytes()


def test_frames_that_cover_nothing_end_the_join_past_the_bound() -> None:
    png, _ = noise_png()
    places = [(NOISE * (n % 6), NOISE * (n // 6)) for n in range(24)]
    assert len(png) * len(places) > QUEUED_BYTES
    frames = [frame(png, n, at, n) for n, at in enumerate(places)]
    with joined((NOISE * 6, NOISE * 4), frames) as (copy, guacd):
        copy.refresh(0.0)
        assert answered_all(guacd, len(frames)) < len(frames)
        with pytest.raises(JoinFailed, match="left undrawn"):
            copy.refresh(0.0)


def test_a_join_shown_no_picture_is_made_again_at_the_next_ask() -> None:
    """guacd now and then answers a join of a still screen with a sync and no picture, and sends none until the
    screen changes: the wall's tile would stay empty. The wall joins afresh at the next ask instead."""
    png, _ = noise_png()
    guacd = FakeGuacd([encode("sync", "1")], [sized((NOISE, NOISE)), frame(png, 1, (0, 0), 2)])
    thumbnails = SeatThumbnails(interval=60.0)
    try:
        assert thumbnails.joined_picture(guacd.address, "lease-1", "$fake") is None
        shown = thumbnails.joined_picture(guacd.address, "lease-1", "$fake")
        assert shown is not None and guacd.joins == 2
        assert Image.open(io.BytesIO(shown)).size == (NOISE // SCALE, NOISE // SCALE)
    finally:
        thumbnails.stop()
        guacd.close()
