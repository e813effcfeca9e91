"""The image pyramid the detector runs over: which model inputs (windows) find every face asked for.

Small faces in big photos are found by running the full-range model over an image
pyramid, each level resized once. The network is fully convolutional, so a level of
moderate size runs whole, as one input of its own shape; only a level too large for
that is cut into overlapping tiles of the model's 192 px. Where a photo needs one such
level, the detector looks at it smaller first (``hint_window``) and then runs the
full-scale level only in tiles around what may still be a face (``tiles_around``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

INPUT = 192  # full-range model input side: a tile's side in level pixels
_NET_STRIDE = 32  # the network halves its input five times: a whole level is padded to this
# A level up to this many model pixels runs whole (measured, one thread: 288x384 in 11 ms against
# 20 ms for its 6 overlapping tiles, 576x768 in 52 ms against 66 ms for 20 tiles and 42 MB of
# activations); a larger one is cut into tiles.
_MAX_LEVEL_PIXELS = 576 * 768
# Interpreters kept for whole-level shapes besides the 192 px one: a level's shape follows the
# photo's aspect ratio, so a few serve most photos (each costs 15-30 ms to build). No photo runs
# more levels whole than this, so that its own levels never evict each other.
SHAPES_KEPT = 4
# A face is found reliably from this many model pixels wide (measured: BlazeFace
# scores real faces of 14 px at 0.77 or more); each pyramid level
# covers faces from this size up to _TILE_OVERLAP, the next coarser level the rest.
_MIN_MODEL_FACE = 14.0
_TILE_OVERLAP = 48
# The coarsest input is the photo shrunk into a grey frame this many times its long side:
# BlazeFace misses a face that fills its input. Chosen with `python -m scripts.faces` (the
# datasets' tight face crops) and `tests/vision/test_detect.py`'s crops of the portraits' faces: at 1.6
# many a face crop went unfound, at 2.5 few, and the photos' faces and pasted faces the same.
_PAD = 2.5
# A single whole level's long side is a multiple of this (see _one_level).
_LEVEL_STEP = 64
_LEVEL_MARGIN = 32
# The (width, height) of the inputs smaller than a tile that a level or a first look runs at: a level
# that fits one runs in it, centred in grey, instead of in a tile. Their interpreters are kept for
# good, so few: with one more shape per orientation (128x160, 160x128) the faces stage's median over
# the test photos was no lower, and each shape's interpreter holds megabytes.
SMALL_SHAPES: tuple[tuple[int, int], ...] = ((160, 160),)


@dataclass(frozen=True)
class Window:
    """One model input: a ``width`` x ``height`` window of the pyramid level of tile side ``side``.

    ``side`` is how many source pixels a 192 px tile of the level spans. ``x`` and ``y`` are the
    window's top-left corner in that level's pixels; past the level's edge (a negative corner, or
    a window rounded up to the network's stride) it is mid grey.
    """

    side: float
    x: int
    y: int
    width: int
    height: int

    @property
    def scale(self) -> float:
        """Level pixels per source pixel."""
        return INPUT / self.side

    def shrunk(self, size: int) -> Window:
        """The same part of the image as a ``size`` px square input (this window is a 192 px one)."""
        ratio = size / INPUT
        return Window(self.side / ratio, round(self.x * ratio), round(self.y * ratio), size, size)

    def fitted(self) -> Window:
        """A window no larger than a tile in the smallest input that holds it (one of ``SMALL_SHAPES``,
        or the tile), centred in more grey; a larger one as it is.

        A few shapes serve every small level and first look, so that their interpreters stay built.
        """
        if self.width > INPUT or self.height > INPUT:
            return self
        width, height = min(
            ((w, h) for w, h in (*SMALL_SHAPES, (INPUT, INPUT)) if w >= self.width and h >= self.height),
            key=lambda shape: shape[0] * shape[1],
        )
        dx, dy = (width - self.width) // 2, (height - self.height) // 2
        return Window(self.side, self.x - dx, self.y - dy, width, height)

    def cut(self, level: np.ndarray) -> np.ndarray:
        """This model input cut from its uint8 level, scaled to [-1, 1].

        Past the image edge it is mid grey (0), as MediaPipe pads.
        """
        x0, y0 = self.x, self.y
        src = level[max(y0, 0) : y0 + self.height, max(x0, 0) : x0 + self.width]
        if x0 >= 0 and y0 >= 0 and src.shape[:2] == (self.height, self.width):
            return _as_input(src)
        canvas = np.zeros((self.height, self.width, 3), dtype=np.float32)
        dy, dx = max(-y0, 0), max(-x0, 0)
        canvas[dy : dy + src.shape[0], dx : dx + src.shape[1]] = _as_input(src)
        return canvas


def _as_input(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels as the model reads them: float32 in [-1, 1]."""
    scaled = np.multiply(pixels, np.float32(1 / 127.5), dtype=np.float32)
    scaled -= 1.0
    return scaled


def plan_windows(width: int, height: int, *, min_face: float, whole_levels: bool = True) -> list[Window]:
    """The model inputs that find every face at least ``min_face`` pixels wide, in the order they run.

    With ``whole_levels``, a level of at most ``_MAX_LEVEL_PIXELS`` (rounded up to the network's
    stride) is one window instead of its overlapping tiles: no tile edge cuts a face there, and
    no pixel is looked at twice. At most ``SHAPES_KEPT`` levels run whole, so that one photo never
    needs more whole-level interpreters than the detector keeps. Without it, every level is tiles.
    """
    if whole_levels and (one := _one_level(width, height, min_face=min_face)) is not None:
        return one
    levels = _tiles(width, height, min_face=min_face)
    sizes = _level_sizes(width, height, sorted(levels))
    windows: list[Window] = []
    whole = 0
    for side, corners in levels.items():
        level_w, level_h = sizes[side]
        padded_w, padded_h = _round_up(level_w, _NET_STRIDE), _round_up(level_h, _NET_STRIDE)
        if whole_levels and len(corners) > 1 and padded_w * padded_h <= _MAX_LEVEL_PIXELS and whole < SHAPES_KEPT:
            windows.append(Window(side, 0, 0, padded_w, padded_h))
            whole += 1
        else:
            scale = INPUT / side
            windows += [Window(side, round(x * scale), round(y * scale), INPUT, INPUT) for x, y in corners]
    return windows


def _one_level(width: int, height: int, *, min_face: float) -> list[Window] | None:
    """The padded image and one whole level where a ``min_face`` face spans ``_MIN_MODEL_FACE`` model pixels.

    The level's long side is rounded up to a multiple of ``_LEVEL_STEP``, so that a photo's
    level shape depends on its aspect ratio and a few whole-level interpreters serve most
    photos. A face too large for the level is found on the padded image, which sees faces
    from ``_MIN_MODEL_FACE * _PAD`` model pixels of its long side. A small photo has its one
    level too, even one shorter than a tile: the detector looks at it as at any other, the
    padded image small first. None where that level would be larger than ``_MAX_LEVEL_PIXELS``.
    """
    long_side = max(width, height)
    needed = long_side * _MIN_MODEL_FACE / min_face
    level_long = _round_up(math.ceil(needed), _LEVEL_STEP)
    scale = level_long / long_side
    level_w, level_h = _scaled_size(width, height, scale)[1]
    padded_w = _round_up(level_w + 2 * _LEVEL_MARGIN, _NET_STRIDE)
    padded_h = _round_up(level_h + 2 * _LEVEL_MARGIN, _NET_STRIDE)
    if padded_w * padded_h > _MAX_LEVEL_PIXELS:
        return None
    padded = long_side * _PAD
    corner = ((width - padded) / 2, (height - padded) / 2)
    coarse = Window(padded, round(corner[0] * INPUT / padded), round(corner[1] * INPUT / padded), INPUT, INPUT)
    # The level sits in the middle of its grey-bordered input.
    level = Window(INPUT / scale, -((padded_w - level_w) // 2), -((padded_h - level_h) // 2), padded_w, padded_h)
    return [coarse, level]


# The padded image's input side where the first look runs: a face filling the photo spans
# 60 model pixels, and faces too small for this are found on the first look's level. Chosen
# with `python -m scripts.faces --pasted`: at 96 rather than 128 every photo keeps its faces.
COARSE_INPUT = 96
# The scale of the detector's first look at a photo's one whole level (about half its pixels).
# Chosen with `python -m scripts.faces --pasted` (faces pasted at 1 to 2 times the smallest asked
# for): at 0.5, more faces a little above the smallest size left hints too weak to call for a tile.
HINT_SCALE = 0.7


def hint_window(width: int, height: int, level: Window) -> Window:
    """The whole ``level`` at ``HINT_SCALE``, in a grey border half that share of the level's: the first look.

    The border costs pixels at every photo (the rounding to the network's stride adds more):
    half the level's border found as many faces as all of it with `python -m scripts.faces
    --pasted` (within two a size), where no border lost one of group-team.jpg's faces.

    Faces from 1 / ``HINT_SCALE`` times the smallest asked for span ``_MIN_MODEL_FACE`` model
    pixels here and are found; a smaller one may not be, but the anchors over it score above the
    background (``FaceDetector.hint_score``), which says where the full-scale level must look.
    """
    side = level.side / HINT_SCALE
    level_w, level_h = _scaled_size(width, height, INPUT / side)[1]
    margin = round(_LEVEL_MARGIN * HINT_SCALE)
    padded_w = _round_up(level_w + margin, _NET_STRIDE)
    padded_h = _round_up(level_h + margin, _NET_STRIDE)
    return Window(side, -((padded_w - level_w) // 2), -((padded_h - level_h) // 2), padded_w, padded_h)


def tiles_around(points: np.ndarray, level: Window) -> list[Window]:
    """192 px windows of the whole-level window ``level`` that hold a face centred on each of ``points``.

    ``points`` are (n, 2) source pixels. A point within ``_TILE_OVERLAP / 2`` model pixels of a
    tile's edge gets a tile of its own, centred on it, so a face up to ``_TILE_OVERLAP`` model
    pixels wide there is whole in some tile; tiles stay inside the level's grey border.
    """
    scale = level.scale
    reach = _TILE_OVERLAP // 2
    tiles: list[Window] = []
    for px, py in ((float(x) * scale, float(y) * scale) for x, y in points):
        if any(t.x + reach <= px <= t.x + INPUT - reach and t.y + reach <= py <= t.y + INPUT - reach for t in tiles):
            continue
        x = max(min(round(px) - INPUT // 2, level.x + level.width - INPUT), level.x)
        y = max(min(round(py) - INPUT // 2, level.y + level.height - INPUT), level.y)
        tiles.append(Window(level.side, x, y, INPUT, INPUT))
    return tiles


def _tiles(width: int, height: int, *, min_face: float) -> dict[float, list[tuple[float, float]]]:
    """The pyramid's square tiles: tile side -> their top-left corners, all in source pixels.

    The coarsest level is the whole image inside a grey border; each finer
    level halves the source side of its tiles until a ``min_face`` face spans
    ``_MIN_MODEL_FACE`` model pixels. Tiles of one level overlap by
    ``_TILE_OVERLAP`` model pixels, so a face up to that size always fits whole
    in a tile of its level, and a larger one is at least ``_MIN_MODEL_FACE``
    wide on the next coarser level. The bordered image sees faces from
    ``_MIN_MODEL_FACE * _PAD`` model pixels of the long side; the first finer
    level sees them whole up to ``_TILE_OVERLAP / 2``, so where the border is
    wider than that leaves (as ``_PAD`` is), or no finer level exists, the bare
    whole image is looked at too.
    """
    long_side = float(max(width, height))
    finer: dict[float, list[tuple[float, float]]] = {}
    side = long_side
    while side * _MIN_MODEL_FACE / INPUT > min_face:
        side /= 2
        stride = side * (INPUT - _TILE_OVERLAP) / INPUT
        finer[side] = [(x, y) for y in _starts(height, side, stride) for x in _starts(width, side, stride)]
    levels: dict[float, list[tuple[float, float]]] = {}
    if not finer or _MIN_MODEL_FACE * _PAD > _TILE_OVERLAP / 2:
        # Nothing finer covers the faces between _MIN_MODEL_FACE model pixels of the
        # whole image and of the padded one: look at the whole image too.
        levels[long_side] = [(0.0, 0.0)]
    # BlazeFace misses a face that fills its whole input (a selfie, a face
    # crop), so the coarsest level sees the image shrunk into a grey border.
    padded = long_side * _PAD
    levels[padded] = [((width - padded) / 2, (height - padded) / 2)]
    return levels | finer


def _starts(length: int, side: float, stride: float) -> list[float]:
    if side >= length:
        return [0.0]
    count = math.ceil((length - side) / stride) + 1
    step = (length - side) / (count - 1)
    return [i * step for i in range(count)]


def _round_up(value: int, step: int) -> int:
    return max(step, -(-value // step) * step)


def _level_sizes(width: int, height: int, sides: list[float]) -> dict[float, tuple[int, int]]:
    """The (width, height) of every level ``pyramid`` makes for these tile sides, finest first."""
    sizes: dict[float, tuple[int, int]] = {}
    source_scale = 1.0
    for side in sides:
        scale = INPUT / side
        width, height = _scaled_size(width, height, scale / source_scale)[1]
        source_scale = scale
        sizes[side] = (width, height)
    return sizes


def pyramid(
    image: np.ndarray, sides: list[float], *, made: dict[float, np.ndarray] | None = None
) -> dict[float, np.ndarray]:
    """Every level the windows need (tile side -> the image scaled so a tile is model-sized), uint8.

    The finest level is resized from the image; each coarser one from the smallest level
    already made that is finer than it (far smaller than the image): of these, or of ``made``
    (levels of this image made before, returned too). Only the windows cut from a level are
    turned into the model's floats (``Window.cut``): a level may run in a few tiles.
    """
    levels = dict(made or {})
    for side in sorted(sides):  # finest (smallest tile side, largest level) first
        if side in levels:
            continue
        finer = [made_side for made_side in levels if made_side < side]
        source, source_scale = (levels[max(finer)], INPUT / max(finer)) if finer else (image, 1.0)
        levels[side] = _scaled(source, INPUT / side / source_scale)
    return levels


def _scaled(image: np.ndarray, scale: float) -> np.ndarray:
    """``image`` resized by ``scale``: halved while it can be, then one small bilinear step.

    OpenCV's area averaging has a fast path for halving only: two halvings cost a
    fraction of one step of four, and far less than any other factor; the rest, a
    scale between a half and one, is bilinear, a fraction of its area-averaged cost
    (timed on one thread). The halvings leave out at most ``factor - 1`` rows and
    columns at the image's far edges, which keeps every coordinate exact.
    """
    height, width = image.shape[:2]
    factor, (new_width, new_height) = _scaled_size(width, height, scale)
    if factor >= 2:
        image = image[: height // factor * factor, : width // factor * factor]
        while factor >= 2:
            image = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)
            factor //= 2
    if image.shape[:2] == (new_height, new_width):
        return np.ascontiguousarray(image)
    return cv2.resize(image, (new_width, new_height), interpolation=cv2.INTER_LINEAR)


def _scaled_size(width: int, height: int, scale: float) -> tuple[int, tuple[int, int]]:
    """The power of two ``_scaled`` halves by first (1: none), and the (width, height) it gives."""
    factor = 2 ** int(math.log2(min(1 / scale, height, width))) if scale <= 0.5 else 1
    if factor >= 2:
        width, height, scale = width // factor, height // factor, scale * factor
    return factor, (max(1, round(width * scale)), max(1, round(height * scale)))
