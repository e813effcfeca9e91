"""The face crop the expression models see: cut from the detector's face, eyes levelled."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from memegen.vision.crop import CROP_SCALE, CROP_SHIFT, align_crop, align_crops
from memegen.vision.detect import Face, FaceDetector
from scripts.faces import read_rgb


def test_align_crop_levels_a_tilted_face(photos_dir: Path, detector: FaceDetector) -> None:
    image = read_rgb(photos_dir / "obama.jpg")
    height, width = image.shape[:2]
    turn = cv2.getRotationMatrix2D((width / 2, height / 2), 25, 1.0)
    tilted = cv2.warpAffine(image, turn, (width, height), borderMode=cv2.BORDER_REFLECT)
    (face,) = detector.detect(tilted)
    assert face.roll == pytest.approx(-25, abs=6)
    crop = align_crop(tilted, face, size=64)
    assert crop.shape == (64, 64, 3)
    (again,) = detector.detect(cv2.resize(crop, (256, 256)))
    assert abs(again.roll) < 8


def one_area_step(image: np.ndarray, face: Face, *, size: int) -> np.ndarray:
    """The crop as ``align_crop`` cut it before the halvings: the region grey, one area step, the warp."""
    cx, cy = face.center
    cy += CROP_SHIFT * face.h
    side = max(face.w, face.h) * CROP_SCALE
    zoom = size / side
    reach = side * 0.75 if zoom < 0.5 else side * 0.75 + 2
    x0, y0 = max(0, math.floor(cx - reach)), max(0, math.floor(cy - reach))
    x1, y1 = min(image.shape[1], math.ceil(cx + reach)), min(image.shape[0], math.ceil(cy + reach))
    region, cx, cy = cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY), cx - x0, cy - y0
    factor = 2 * zoom if zoom < 0.5 else 1.0
    if factor < 1:
        region = cv2.resize(region, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    rotation = cv2.getRotationMatrix2D((cx * factor, cy * factor), face.roll, zoom / factor)
    rotation[0, 2] += size / 2 - cx * factor
    rotation[1, 2] += size / 2 - cy * factor
    return cv2.warpAffine(region, rotation, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


@pytest.fixture(scope="module")
def big_face(photos_dir: Path, detector: FaceDetector) -> tuple[np.ndarray, Face]:
    # A 2500x1728 portrait whose face is about 780 px wide: its 48 px crop shrinks it 16 times.
    image = read_rgb(photos_dir / "portrait-img4.jpg")
    (face,) = detector.detect(image)
    assert max(face.w, face.h) * CROP_SCALE > 16 * 48
    return image, face


def test_sides_cut_together_are_each_sides_own_crop(big_face: tuple[np.ndarray, Face]) -> None:
    # The region, its grey and its halvings are shared: none of it may leak from one side into another.
    image, face = big_face
    together = align_crops(image, face, sizes=(48, 96, 320, 640), gray=True)
    for size, crop in together.items():
        assert np.array_equal(crop, align_crop(image, face, size=size, gray=True)), size


def test_a_big_face_is_shrunk_as_one_area_step_would_shrink_it(big_face: tuple[np.ndarray, Face]) -> None:
    image, face = big_face
    for size in (48, 96):
        crop = align_crop(image, face, size=size, gray=True).astype(np.int16)
        reference = one_area_step(image, face, size=size).astype(np.int16)
        # Halvings then one step average each pixel over a footprint whose edges are whole halved
        # pixels: measured a mean of 1.05 (48 px) and 0.78 (96 px) grey levels from one step; bound 1.5.
        assert np.abs(crop - reference).mean() < 1.5, size
        # And in the same place: moved by a pixel either way, the crops differ far more (8 to 16 levels).
        inner = np.abs(crop[2:-2, 2:-2] - reference[2:-2, 2:-2]).mean()
        for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
            moved = np.roll(reference, (dy, dx), axis=(0, 1))[2:-2, 2:-2]
            assert np.abs(crop[2:-2, 2:-2] - moved).mean() > 4 * inner, (size, dy, dx)


def test_without_a_halving_the_crop_is_one_area_step_pixel_for_pixel(big_face: tuple[np.ndarray, Face]) -> None:
    # A side that shrinks the face by less than 4 takes no halving: the training crops of
    # JAFFE's and LFW's faces are cut that way, and stay as they were cut.
    image, face = big_face
    side = max(face.w, face.h) * CROP_SCALE
    for size in (round(side * 0.3), round(side * 0.45), round(side * 0.7)):
        assert np.array_equal(align_crop(image, face, size=size, gray=True), one_area_step(image, face, size=size))
