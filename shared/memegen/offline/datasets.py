"""Folder-per-class face datasets: listing, identities, and the face crop models see."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from memegen.contract import IMAGE_SUFFIXES
from memegen.errors import DatasetError
from memegen.labels import LABELS
from memegen.vision.crop import CROP_SCALE, CROP_SHIFT, FILLS_IMAGE, align_crops
from memegen.vision.detect import FaceDetector

LAYOUT = "DIR/<label>/<image>, with <label> among: " + " ".join(LABELS)


@dataclass(frozen=True)
class Sample:
    """One labelled image of a dataset."""

    path: Path
    label: int
    identity: str | None


def identity_of(name: str) -> str | None:
    """The person in a dataset file name, where the name carries one.

    JAFFE ``KA.AN1.39.png`` is ``KA``; IMFDB ``KatrinaKaif_10.jpg`` and LFW
    ``Aaron_Eckhart_0001.jpg`` are the name before the last underscore; FER2013's
    ``Training_123.jpg`` and ``PublicTest_123.jpg`` carry none.
    """
    stem = Path(name).stem
    if stem.startswith(("Training_", "PublicTest_", "PrivateTest_")):
        return None
    if "." in stem:
        return stem.split(".", 1)[0]
    if "_" in stem:
        return stem.rsplit("_", 1)[0]
    return None


def list_samples(root: Path) -> list[Sample]:
    """Every image of a folder-per-class dataset, sorted by path.

    Raises ``DatasetError`` naming the expected layout when ``root`` is not one.
    """
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder; expected {LAYOUT}")
    samples = []
    for index, label in enumerate(LABELS):
        folder = root / label
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                samples.append(Sample(path, index, identity_of(path.name)))
    if not samples:
        raise DatasetError(f"{root}: no labelled images; expected {LAYOUT}")
    return samples


def read_gray(path: Path) -> np.ndarray | None:
    """The image as 8-bit grayscale, or None where it cannot be decoded."""
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        return None
    image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
    if image is None or image.size == 0:
        return None
    return image


def face_of(
    gray: np.ndarray,
    detector: FaceDetector,
    *,
    size: int,
    scale: float = CROP_SCALE,
    shift: float = CROP_SHIFT,
) -> tuple[np.ndarray, bool]:
    """The face a model should see in a dataset image, and whether a face was found.

    An image whose face fills it (a tight crop, as FER2013 and LFW are) is used
    whole; otherwise the detector's best face is cut out with ``align_crop``, the
    same cut the meme engine makes (``size``, ``scale`` and ``shift`` as the
    ensemble's manifest gives them). An image with no face found is used whole.
    """
    cuts, found = cuts_of(gray, detector, sizes=(size,), scale=scale, shift=shift)
    return cuts[size], found


def cuts_of(
    gray: np.ndarray,
    detector: FaceDetector,
    *,
    sizes: tuple[int, ...],
    scale: float = CROP_SCALE,
    shift: float = CROP_SHIFT,
) -> tuple[dict[int, np.ndarray], bool]:
    """``face_of`` at several sides with one detection: side -> face, and whether a face was found."""
    faces = detector.detect(gray)
    height, width = gray.shape
    if faces and faces[0].w < FILLS_IMAGE * width:
        return align_crops(gray, faces[0], sizes=sizes, scale=scale, shift=shift), True
    side = min(height, width)
    y0, x0 = (height - side) // 2, (width - side) // 2
    square = gray[y0 : y0 + side, x0 : x0 + side]
    cuts = {}
    for size in sizes:
        interpolation = cv2.INTER_AREA if max(height, width) > size else cv2.INTER_LINEAR
        cuts[size] = cv2.resize(square, (size, size), interpolation=interpolation)
    return cuts, bool(faces)
