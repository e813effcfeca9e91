"""The face crop the expression models see: cut from the detector's face, eyes levelled."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from memegen.vision.crop import align_crop
from memegen.vision.detect import FaceDetector
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
