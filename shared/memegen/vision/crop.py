"""The face crop the expression models see, cut one way for training and for inference.

Training (``models/train``, through ``memegen.offline.datasets``) and the meme engine both cut
faces with ``align_crop``, so the members see one framing. Training cuts with the
defaults below and the build writes them into ``models/ensemble.json``'s ``crop``;
inference reads the crop from there (``Crop.from_manifest``), never from these constants,
so a committed ensemble keeps the framing it was trained on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from memegen.errors import ModelError

if TYPE_CHECKING:  # only its box and eyes are read: no detector is loaded to cut a crop
    from memegen.vision.detect import Face

# The classifiers' face crop, relative to the detector's box: measured on LFW's
# tight crops, whose faces the detector boxes at 0.88 of the width, with the box
# centre 0.04 of the height below the crop centre. Training and inference crops
# are cut the same way (``align_crop``), so the models see one framing.
CROP_SCALE = 1.15
CROP_SHIFT = -0.045
# A face box at least this share of the image width means the image already is
# a face crop (a dataset image): it is used whole.
FILLS_IMAGE = 0.75


@dataclass(frozen=True)
class Crop:
    """How a face is cut for the members (the manifest's ``crop``): what ``align_crop`` takes.

    ``size`` is the square's side in pixels, ``scale`` its side over the detector's box
    width, ``shift`` how far its centre sits below the box centre, in box heights.
    """

    size: int
    scale: float
    shift: float

    @classmethod
    def from_manifest(cls, entry: dict[str, Any]) -> Crop:
        """The crop of a manifest's ``crop`` entry; ``ModelError`` for one that cannot work."""
        try:
            crop = cls(int(entry["size"]), float(entry["scale"]), float(entry["shift"]))
            color = entry.get("color", "grayscale")
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"the manifest's crop {entry!r} needs a size, a scale and a shift") from exc
        if not (16 <= crop.size <= 512 and 0.5 <= crop.scale <= 4 and -1 <= crop.shift <= 1 and color == "grayscale"):
            raise ModelError(
                f"the manifest's crop {entry!r} cannot work: size 16..512 px, scale 0.5..4, shift -1..1, grayscale"
            )
        return crop


def align_crop(
    image: np.ndarray,
    face: Face,
    *,
    size: int,
    scale: float = CROP_SCALE,
    shift: float = CROP_SHIFT,
    gray: bool = False,
) -> np.ndarray:
    """Cut the face out with its eyes level, as a ``size`` x ``size`` square.

    The square is ``scale`` times the detector's box width, centred on the box
    centre moved down by ``shift`` box heights. One affine warp does the
    rotation, the crop and the resize; the edge is replicated past the image.
    ``gray`` turns an RGB image grey first (only the region the square can reach,
    which gives the same pixels as turning the whole photo grey, far sooner).
    """
    return align_crops(image, face, sizes=(size,), scale=scale, shift=shift, gray=gray)[size]


def align_crops(
    image: np.ndarray,
    face: Face,
    *,
    sizes: tuple[int, ...],
    scale: float = CROP_SCALE,
    shift: float = CROP_SHIFT,
    gray: bool = False,
) -> dict[int, np.ndarray]:
    """``align_crop`` at each of ``sizes`` (side -> crop), the work they share done once.

    The region the squares can reach is cut and turned grey once, and a big face is shrunk
    by halvings that the sides share before each side's own last step.
    """
    cx, cy = face.center
    cy += shift * face.h
    side = max(face.w, face.h) * scale
    # Only the region the rotated square can reach (its circumscribed square, with a
    # little to spare for the interpolation) is resized or turned grey, not the photo.
    # > half the diagonal, sqrt(2) / 2; the warp alone also needs a pixel past the corners, the
    # shrink below keeps the region its training crops were cut with.
    reaches = {size: side * 0.75 if size / side < 0.5 else side * 0.75 + 2 for size in sizes}
    height, width = image.shape[:2]

    def corners(reach: float) -> tuple[int, int, int, int]:
        x0, y0 = max(0, math.floor(cx - reach)), max(0, math.floor(cy - reach))
        x1, y1 = min(width, math.ceil(cx + reach)), min(height, math.ceil(cy + reach))
        return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else (0, 0, width, height)

    # The widest region, grey once: each side's own region is a slice of it, pixel for pixel.
    ox, oy, ox1, oy1 = corners(max(reaches.values()))
    region = image[oy:oy1, ox:ox1]
    if gray and region.ndim == 3:
        region = cv2.cvtColor(region, cv2.COLOR_RGB2GRAY)
    halvings: dict[tuple[int, ...], np.ndarray] = {}
    crops = {}
    for size in sizes:
        x0, y0, x1, y1 = corners(reaches[size])
        cut = region[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
        zoom = size / side
        factor = 1.0
        if zoom < 0.5:
            # Shrink first so the warp does not alias on big faces.
            factor = 2 * zoom
            cut = _shrunk(cut, factor, key=(x0, y0, x1, y1), halvings=halvings)
        fx, fy = (cx - x0) * factor, (cy - y0) * factor
        rotation = cv2.getRotationMatrix2D((fx, fy), face.roll, zoom / factor)
        rotation[0, 2] += size / 2 - fx
        rotation[1, 2] += size / 2 - fy
        crops[size] = cv2.warpAffine(
            cut, rotation, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
    return crops


def _shrunk(
    region: np.ndarray, factor: float, *, key: tuple[int, ...], halvings: dict[tuple[int, ...], np.ndarray]
) -> np.ndarray:
    """``region`` area-averaged to ``factor`` of its size: exact halvings while they fit, then one last step.

    OpenCV's area averaging has a fast path for halving only, and the general one costs what the
    region's pixels cost at any factor: the halvings leave the last step a quarter of them or less.
    Every step scales by its exact factor, so a point (x, y) of the region lands at (x, y) times
    ``factor``, as one area step puts it; the halvings may leave out a pixel at the region's far
    edges. Without a halving this is that one step, pixel for pixel.
    """
    height, width = region.shape[:2]
    times = 0
    while factor * 2 ** (times + 1) <= 1 and min(height, width) >> (times + 1) >= 2:
        times += 1
        if (*key, times) not in halvings:
            half = halvings.get((*key, times - 1), region)
            h2, w2 = half.shape[0] // 2 * 2, half.shape[1] // 2 * 2
            halvings[(*key, times)] = cv2.resize(half[:h2, :w2], (w2 // 2, h2 // 2), interpolation=cv2.INTER_AREA)
    shrunk = halvings[(*key, times)] if times else region
    rest = factor * 2**times
    return cv2.resize(shrunk, None, fx=rest, fy=rest, interpolation=cv2.INTER_AREA)
