"""Faces found by the engine's detector on every test photo and on the datasets' images.

    python -m scripts.faces                 # report (Markdown) to stdout
    python -m scripts.faces --update        # and rewrite tests/golden/face_counts.json, on purpose

For each photo of MEMEGEN_PHOTOS: its decoded size, the faces found at the engine's
settings (the smallest face ``Settings.smallest_face`` asks for) and the detector's time
(one thread, warm, median of three). For the datasets of MEMEGEN_DATASETS whose images
each show one person (JAFFE, IMFDB, LFW): the share of images where a face is found
(recall) and the share where more than one is (extra faces, false or a bystander).
``tests/test_detect.py`` fails when a photo's count falls below the golden file's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from memegen.contract import IMAGE_SUFFIXES
from memegen.detect import FaceDetector
from memegen.reader import read_image
from memegen.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "face_counts.json"
ONE_PERSON = ("jaffe", "imfdb", "lfw")


def as_the_engine_reads(data: bytes, settings: Settings) -> tuple[np.ndarray, float]:
    """The upload decoded as the engine decodes it, and the smallest face width the engine looks for in it."""
    picture = read_image(data, min_side=settings.max_side)
    height, width = picture.rgb.shape[:2]
    return picture.rgb, settings.smallest_face(width, height, scale=picture.scale)


def photo_rows(photos: Path, detector: FaceDetector, settings: Settings) -> list[dict[str, object]]:
    """Per photo: name, decoded size, faces found at the engine's settings, detector milliseconds."""
    rows: list[dict[str, object]] = []
    for path in sorted(p for p in photos.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        rgb, smallest = as_the_engine_reads(path.read_bytes(), settings)
        faces = detector.detect(rgb, min_face=smallest)
        times = []
        for _ in range(3):
            started = time.perf_counter()
            detector.detect(rgb, min_face=smallest)
            times.append((time.perf_counter() - started) * 1000)
        size = f"{rgb.shape[1]}x{rgb.shape[0]}"
        rows.append({"photo": path.name, "size": size, "faces": len(faces), "ms": statistics.median(times)})
    return rows


def dataset_rows(datasets: Path, detector: FaceDetector, settings: Settings) -> list[dict[str, object]]:
    """Per one-person dataset: images, share with a face found, share with more than one."""
    rows: list[dict[str, object]] = []
    for name in ONE_PERSON:
        paths = sorted(p for p in (datasets / name).glob("*/*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            continue
        found = extra = 0
        for path in paths:
            rgb, smallest = as_the_engine_reads(path.read_bytes(), settings)
            count = len(detector.detect(rgb, min_face=smallest))
            found += count >= 1
            extra += count > 1
        rows.append({"dataset": name, "images": len(paths), "found": found / len(paths), "extra": extra / len(paths)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help=f"rewrite {GOLDEN.relative_to(ROOT)}")
    parser.add_argument("--no-datasets", action="store_true", help="the photos only")
    args = parser.parse_args(argv)
    photos = Path(os.environ.get("MEMEGEN_PHOTOS", ROOT.parent / "shared" / "photos"))
    datasets = Path(os.environ.get("MEMEGEN_DATASETS", ROOT.parent / "shared" / "datasets"))
    if not photos.is_dir():
        print(f"error: no photos at {photos}: set MEMEGEN_PHOTOS", file=sys.stderr)
        return 2
    settings = Settings.from_env()
    detector = FaceDetector.from_dir(settings.detector_dir, threads=1, min_face=settings.min_face)
    rows = photo_rows(photos, detector, settings)
    print("| photo | decoded | faces | detector ms |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['photo']} | {row['size']} | {row['faces']} | {row['ms']:.1f} |")
    print(
        f"\n{len(rows)} photos, {sum(int(r['faces']) for r in rows)} faces;"  # type: ignore[call-overload]
        f" detector median {statistics.median(float(r['ms']) for r in rows):.1f} ms"  # type: ignore[arg-type]
    )
    if not args.no_datasets and datasets.is_dir():
        print("\n| dataset (one person an image) | images | a face found | more than one |\n|---|---|---|---|")
        for row in dataset_rows(datasets, detector, settings):
            print(f"| {row['dataset']} | {row['images']} | {row['found']:.1%} | {row['extra']:.1%} |")
    if args.update:
        GOLDEN.write_text(json.dumps({r["photo"]: r["faces"] for r in rows}, indent=1) + "\n")
        print(f"\nwrote {GOLDEN.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
