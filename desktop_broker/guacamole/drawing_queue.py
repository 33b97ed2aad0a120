"""What guacd sent a join since its picture was last drawn, kept undecoded, and which of it still matters.

A screen that never stops changing (a video, a scrolling list) makes guacd send a new image of the same region every
frame; the screen wall draws its picture every ~2 s, so only the last image of each region needs decoding. `needed`
finds the drawing operations a later one covers before anything read them (a ``copy`` reads its source): it walks
the queue backwards with one mask per layer of the pixels later operations decide alone. An operation decides its
pixels alone when its source is opaque (an opaque image or fill, a copy from a layer known to be opaque) or its mode
is SRC; guacd draws opaque images on the default layer and copies each frame's changed region to its last-frame
buffer with OVER from that opaque layer, so each region's last image before the refresh is the one decoded.
Opacity is known per layer, soundly: a layer is opaque once an opaque drawing covers all of it, and no longer after
anything that may leave transparency (a size growing it, a clear, a translucent SRC or RATOP).
"""

from dataclasses import dataclass

from PIL import Image

Box = tuple[int, int, int, int]
"""left, top, right, bottom."""
SRC, ROUT, RATOP = 0xC, 0x2, 0x9


@dataclass(frozen=True, slots=True)
class DrawImage:
    mask: int
    layer: int
    box: Box
    picture: Image.Image
    """Opened (its header read), not decoded."""
    opaque: bool
    size_bytes: int


@dataclass(frozen=True, slots=True)
class Copy:
    source: int
    box: Box
    mask: int
    layer: int
    at: tuple[int, int]


@dataclass(frozen=True, slots=True)
class Fill:
    mask: int
    layer: int
    box: Box
    colour: tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class Size:
    layer: int
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class Dispose:
    layer: int


Operation = DrawImage | Copy | Fill | Size | Dispose


@dataclass(slots=True)
class Layers:
    """What is known of the layers before a queue is drawn: their sizes, and which are opaque all over."""

    sizes: dict[int, tuple[int, int]]
    opaque: set[int]

    def copy(self) -> "Layers":
        return Layers(dict(self.sizes), set(self.opaque))


@dataclass(frozen=True, slots=True)
class _Effect:
    layer: int
    box: Box | None
    """The pixels it may change, None when it draws nothing (a size, a dispose, an empty copy)."""
    decides: bool
    """Whether those pixels no longer depend on what was under them."""
    reads: tuple[int, Box] | None


def needed(queue: list[Operation], before: Layers) -> tuple[list[Operation], Layers]:
    """The operations of ``queue`` that decide what some layer shows once all are drawn (in order), and what is
    known of the layers after it."""
    layers = before.copy()
    effects = [_effect(operation, layers) for operation in queue]
    extents: dict[int, tuple[int, int]] = {}
    for effect in effects:
        for layer, box in ((effect.layer, effect.box), effect.reads or (0, None)):
            if box is not None:
                width, height = extents.get(layer, (0, 0))
                extents[layer] = (max(width, box[2]), max(height, box[3]))
    decided = {layer: Image.new("L", size) for layer, size in extents.items() if size[0] > 0 and size[1] > 0}
    kept: list[Operation] = []
    for operation, effect in zip(reversed(queue), reversed(effects), strict=True):
        mask = decided.get(effect.layer)
        if isinstance(operation, Dispose) and mask is not None:
            mask.paste(255, (0, 0, *mask.size))  # what it held before is gone, unless something read it first
        elif effect.box is not None and mask is not None:
            if mask.crop(effect.box).getextrema()[0] == 255:
                continue  # every pixel it draws is drawn over later, before anything reads it
            if effect.decides:
                mask.paste(255, effect.box)
        if effect.reads is not None and effect.reads[0] in decided:
            decided[effect.reads[0]].paste(0, effect.reads[1])
        kept.append(operation)
    kept.reverse()
    return kept, layers


def _effect(operation: Operation, layers: Layers) -> _Effect:
    """What ``operation`` does to its layer; updates ``layers`` to what is known after it."""
    if isinstance(operation, Size):
        width, height = layers.sizes.get(operation.layer, (0, 0))
        if operation.width > width or operation.height > height:
            layers.opaque.discard(operation.layer)
        layers.sizes[operation.layer] = (operation.width, operation.height)
        return _Effect(operation.layer, None, False, None)
    if isinstance(operation, Dispose):
        layers.opaque.discard(operation.layer)
        layers.sizes.pop(operation.layer, None)
        return _Effect(operation.layer, None, False, None)
    if isinstance(operation, Copy):
        width, height = layers.sizes.get(operation.source, (0, 0))
        box = operation.box
        within = (max(box[0], 0), max(box[1], 0), min(box[2], width), min(box[3], height))
        if within[0] >= within[2] or within[1] >= within[3]:
            return _Effect(operation.layer, None, False, None)  # the source has nothing there: nothing is drawn
        left, top = operation.at[0] + within[0] - box[0], operation.at[1] + within[1] - box[1]
        target = (left, top, left + within[2] - within[0], top + within[3] - within[1])
        source_opaque = operation.source in layers.opaque
        return _drawn(layers, operation.layer, target, operation.mask, source_opaque, (operation.source, within))
    if isinstance(operation, Fill):
        return _drawn(layers, operation.layer, operation.box, operation.mask, operation.colour[3] == 255, None)
    return _drawn(layers, operation.layer, operation.box, operation.mask, operation.opaque, None)


def _drawn(layers: Layers, layer: int, box: Box, mask: int, opaque: bool, reads: tuple[int, Box] | None) -> _Effect:
    """As `GuacdScreenCopy` draws: an opaque source is pasted (cleared with ROUT), SRC pastes whatever its alpha, a
    translucent source with RATOP may clear, anything else is composited OVER."""
    width, height = layers.sizes.get(layer, (0, 0))
    if layer < 0 and (box[2] > width or box[3] > height):  # buffers grow to fit what is drawn into them
        layers.opaque.discard(layer)
        width, height = max(box[2], width), max(box[3], height)
        layers.sizes[layer] = (width, height)
    if (opaque and mask == ROUT) or (not opaque and mask in (SRC, RATOP)):
        layers.opaque.discard(layer)
    elif opaque and box[0] <= 0 and box[1] <= 0 and box[2] >= width and box[3] >= height:
        layers.opaque.add(layer)
    return _Effect(layer, box, opaque or mask == SRC, reads)
