"""Which of a join's queued drawing operations are decoded at the wall's refresh (`drawing_queue.needed`): only what
no later drawing covers before something reads it. What guacd really sends is the Guacamole wall test's movie."""

import io

from PIL import Image

from desktop_broker.guacamole.drawing_queue import (
    SRC,
    Copy,
    Dispose,
    DrawImage,
    Layers,
    Operation,
    Size,
    needed,
)

OVER = 0xE
SCREEN = (0, 0, 100, 100)


def image(layer: int, box: tuple[int, int, int, int], opaque: bool = True, mask: int = OVER) -> DrawImage:
    """A PNG as the join queues it: opened, not decoded."""
    out = io.BytesIO()
    Image.new("RGB" if opaque else "RGBA", (box[2] - box[0], box[3] - box[1]), (200, 10, 10, 128)).save(out, "PNG")
    return DrawImage(mask, layer, box, Image.open(io.BytesIO(out.getvalue())), opaque, len(out.getvalue()))


def to_last_frame(box: tuple[int, int, int, int] = SCREEN) -> Copy:
    """guacd's copy of a frame's changed region to its last-frame buffer, with OVER."""
    return Copy(0, box, OVER, -1, box[:2])


def kept(queue: list[Operation], before: Layers) -> list[int]:
    """Where in the queue the needed operations are (by identity: two copies of one region are equal)."""
    return [[id(operation) for operation in queue].index(id(operation)) for operation in needed(queue, before)[0]]


def test_only_the_last_image_of_a_region_is_kept_when_each_frame_goes_to_the_last_frame_buffer() -> None:
    queue: list[Operation] = []
    for _ in range(10):
        queue += [image(0, (0, 0, 50, 100)), image(0, (50, 0, 100, 100)), to_last_frame()]
    assert kept(queue, Layers({0: (100, 100)}, {0})) == [27, 28, 29]


def test_images_that_cover_a_region_together_cover_it() -> None:
    queue: list[Operation] = [image(0, (0, 0, 60, 100)), image(0, (0, 0, 100, 40)), image(0, (0, 30, 100, 100))]
    assert kept(queue, Layers({0: (100, 100)}, {0})) == [1, 2]


def test_a_copy_from_a_layer_not_known_to_be_opaque_does_not_hide_what_it_is_drawn_over() -> None:
    queue: list[Operation] = [image(-1, SCREEN), to_last_frame()]
    assert kept(queue, Layers({0: (100, 100), -1: (100, 100)}, set())) == [0, 1]
    assert kept(queue, Layers({0: (100, 100), -1: (100, 100)}, {0})) == [1]


def test_a_layer_is_known_opaque_once_an_opaque_image_covers_it() -> None:
    queue: list[Operation] = [image(0, SCREEN, opaque=False), image(0, SCREEN)]
    assert needed(queue, Layers({0: (100, 100)}, set()))[1].opaque == {0}
    assert needed(queue[:1], Layers({0: (100, 100)}, set()))[1].opaque == set()


def test_what_a_copy_read_is_kept_even_when_drawn_over_later() -> None:
    queue: list[Operation] = [image(0, (0, 0, 50, 50)), Copy(0, (0, 0, 50, 50), SRC, 1, (0, 0)), image(0, SCREEN)]
    assert kept(queue, Layers({0: (100, 100), 1: (50, 50)}, {0})) == [0, 1, 2]


def test_a_translucent_image_does_not_hide_what_is_under_it() -> None:
    queue: list[Operation] = [image(0, SCREEN), image(0, SCREEN, opaque=False)]
    assert kept(queue, Layers({0: (100, 100)}, set())) == [0, 1]
    queue = [image(0, SCREEN), image(0, SCREEN, opaque=False, mask=SRC)]  # SRC replaces, alpha and all
    assert kept(queue, Layers({0: (100, 100)}, set())) == [1]


def test_a_disposed_layers_drawings_are_dropped_and_a_grown_layer_is_no_longer_known_opaque() -> None:
    queue: list[Operation] = [Size(1, 20, 20), image(1, (0, 0, 20, 20)), Dispose(1), Size(0, 200, 100)]
    assert kept(queue, Layers({0: (100, 100)}, {0})) == [0, 2, 3]
    assert needed(queue, Layers({0: (100, 100)}, {0}))[1] == Layers({0: (200, 100)}, set())
