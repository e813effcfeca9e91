"""Faces found by the engine's detector on every test photo and on the datasets' images.

    python -m scripts.faces                 # report (Markdown) to stdout
    python -m scripts.faces --update        # and rewrite tests/golden/face_counts.json, on purpose
    python -m scripts.faces --pasted        # and faces pasted into scenes, with and without the first look

For each photo of MEMEGEN_PHOTOS: its decoded size, the faces found at the engine's
settings (the smallest face ``Settings.smallest_face`` asks for), the detector's time
(one thread, warm, median of three) and the model pixels it runs (its cost, which no load on
the machine moves: compare changes by them). For the datasets of MEMEGEN_DATASETS whose images
each show one person (JAFFE, IMFDB, LFW): the share of images where a face is found
(recall) and the share where more than one is (extra faces, false or a bystander).
``tests/vision/test_detect.py`` fails when a photo's count falls below the golden file's.
Each photo is also run without the detector's first look (``cascade=False``: the whole level at
full scale), for comparison. ``--pasted`` pastes the portraits' faces at 1 to 2
times the smallest face asked for into blurred 1600x1200 scenes and counts those found each way.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from memegen.contract import IMAGE_SUFFIXES
from memegen.settings import Settings
from memegen.vision.detect import FULL_RANGE_FILE, FaceDetector
from memegen.vision.detect.plan import Window
from memegen.vision.reader import read_image

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "face_counts.json"
ONE_PERSON = ("jaffe", "imfdb", "lfw")


def as_the_engine_reads(data: bytes, settings: Settings) -> tuple[np.ndarray, float]:
    """The upload decoded as the engine decodes it, and the smallest face width the engine looks for in it."""
    picture = read_image(data, min_long_side=settings.max_side)
    height, width = picture.rgb.shape[:2]
    return picture.rgb, settings.smallest_face(width, height, scale=picture.scale)


def _detect_ms(detector: FaceDetector, rgb: np.ndarray, min_face: float) -> tuple[int, float]:
    """Faces found, and the median milliseconds of three warm runs."""
    faces = detector.detect(rgb, min_face=min_face)
    times = []
    for _ in range(3):
        started = time.perf_counter()
        detector.detect(rgb, min_face=min_face)
        times.append((time.perf_counter() - started) * 1000)
    return len(faces), statistics.median(times)


def model_pixels(detector: FaceDetector, rgb: np.ndarray, min_face: float) -> int:
    """The model pixels (inputs' width times height) the detector runs on one image: its cost, whatever the load."""
    run = detector._run
    total = 0

    def counted(window: Window, *args: Any, **kwargs: Any) -> Any:
        nonlocal total
        total += window.width * window.height
        return run(window, *args, **kwargs)

    detector._run = counted  # type: ignore[method-assign]
    try:
        detector.detect(rgb, min_face=min_face)
    finally:
        del detector._run  # the class's method again
    return total


def photo_rows(
    photos: Path, detector: FaceDetector, plain: FaceDetector, settings: Settings
) -> list[dict[str, object]]:
    """Per photo: name, decoded size, faces found at the engine's settings, detector ms and model pixels, each way."""
    rows: list[dict[str, object]] = []
    for path in sorted(p for p in photos.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        rgb, smallest = as_the_engine_reads(path.read_bytes(), settings)
        faces, ms = _detect_ms(detector, rgb, smallest)
        plain_faces, plain_ms = _detect_ms(plain, rgb, smallest)
        pixels, plain_pixels = model_pixels(detector, rgb, smallest), model_pixels(plain, rgb, smallest)
        size = f"{rgb.shape[1]}x{rgb.shape[0]}"
        rows.append(
            {
                "photo": path.name,
                "size": size,
                "faces": faces,
                "ms": ms,
                "plain_faces": plain_faces,
                "plain_ms": plain_ms,
                "pixels": pixels,
                "plain_pixels": plain_pixels,
            }
        )
    return rows


def read_rgb(path: Path) -> np.ndarray:
    """A photo file as RGB at full size (no DCT shrink), for the tests and the pasted scenes."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path} is not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def pasted_rows(photos: Path, detectors: dict[str, FaceDetector], *, scenes: int = 24) -> list[dict[str, object]]:
    """Per face size (times the smallest asked for): faces pasted, and those found and other detections, each detector.

    Each scene is a portrait resized to 1600x1200 and blurred (its own face, blurred, is often
    still found: it counts as other) with up to five
    of the portraits' faces pasted, apart, at random places; the smallest face asked for is 5%
    of the short side, as the engine asks. A face counts as found where a detection's centre is
    within half its width of the pasted face's; any other detection counts as other (a false
    face, or the blurred scene's own).
    """
    portraits = sorted(photos.glob("portrait-img*.jpg"))
    finder = next(iter(detectors.values()))
    patches = []
    for path in portraits:
        rgb = read_rgb(path)
        x, y, w, h = max(finder.detect(rgb), key=lambda f: f.w).box
        pad = w // 3
        patches.append((rgb[max(0, y - pad) : y + h + pad, max(0, x - pad) : x + w + pad], w))
    min_face = 0.05 * 1200
    rows: list[dict[str, object]] = []
    for times in (1.0, 1.2, 1.5, 2.0):
        rng = np.random.default_rng(0)
        counts: collections.Counter[str] = collections.Counter()
        for scene in range(scenes):
            background = read_rgb(portraits[scene % len(portraits)])
            canvas = cv2.GaussianBlur(cv2.resize(background, (1600, 1200), interpolation=cv2.INTER_AREA), (0, 0), 8)
            centres: list[tuple[float, float]] = []
            size = times * min_face
            for _ in range(5):
                patch, width = patches[int(rng.integers(len(patches)))]
                small = cv2.resize(patch, None, fx=size / width, fy=size / width, interpolation=cv2.INTER_AREA)
                h, w = small.shape[:2]
                x, y = int(rng.integers(0, 1600 - w)), int(rng.integers(0, 1200 - h))
                if any(abs(x + w / 2 - cx) < w * 1.2 and abs(y + h / 2 - cy) < h * 1.2 for cx, cy in centres):
                    continue
                canvas[y : y + h, x : x + w] = small
                centres.append((x + w / 2, y + h / 2))
            counts["pasted"] += len(centres)
            for name, detector in detectors.items():
                found = [f.center for f in detector.detect(canvas, min_face=min_face)]
                pairs = [
                    [abs(fx - cx) < size / 2 and abs(fy - cy) < size / 2 for cx, cy in centres] for fx, fy in found
                ]
                counts[f"{name} found"] += sum(any(p[i] for p in pairs) for i in range(len(centres)))
                counts[f"{name} other"] += sum(not any(p) for p in pairs)
        rows.append({"times": times, **counts})
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
    parser.add_argument(
        "--pasted", action="store_true", help="and faces pasted into scenes, with and without the first look"
    )
    args = parser.parse_args(argv)
    photos = Path(os.environ.get("MEMEGEN_PHOTOS", ROOT.parent / "shared" / "photos"))
    datasets = Path(os.environ.get("MEMEGEN_DATASETS", ROOT.parent / "shared" / "datasets"))
    if not photos.is_dir():
        print(f"error: no photos at {photos}: set MEMEGEN_PHOTOS", file=sys.stderr)
        return 2
    settings = Settings.from_env()
    detector = FaceDetector.from_dir(settings.detector_dir, threads=1, min_face=settings.min_face)
    model = (settings.detector_dir / FULL_RANGE_FILE).read_bytes()
    plain = FaceDetector(model, threads=1, min_face=settings.min_face, cascade=False)
    rows = photo_rows(photos, detector, plain, settings)
    print(
        "| photo | decoded | faces | detector ms | model pixels | without first look: faces | ms | model pixels |"
        "\n|---|---|---|---|---|---|---|---|"
    )
    for row in rows:
        print(
            f"| {row['photo']} | {row['size']} | {row['faces']} | {row['ms']:.1f} | {row['pixels']:,}"
            f" | {row['plain_faces']} | {row['plain_ms']:.1f} | {row['plain_pixels']:,} |"
        )
    for label, key in (("", ""), ("without the first look: ", "plain_")):
        faces, ms, pixels = (f"{key}{name}" for name in ("faces", "ms", "pixels"))
        print(
            f"\n{label}{len(rows)} photos, {sum(int(r[faces]) for r in rows)} faces;"  # type: ignore[call-overload]
            f" detector median {statistics.median(float(r[ms]) for r in rows):.1f} ms;"  # type: ignore[arg-type]
            f" model pixels median {statistics.median(int(r[pixels]) for r in rows):,.0f},"  # type: ignore[call-overload]
            f" in all {sum(int(r[pixels]) for r in rows):,}"  # type: ignore[call-overload]
        )
    if args.pasted:
        names = {"first look": detector, "without": plain}
        print("\n| face / smallest asked | pasted | " + " | ".join(f"{n}: found | other" for n in names) + " |")
        print("|---|---|" + "---|---|" * len(names))
        for row in pasted_rows(photos, names):
            cells = " | ".join(f"{row[f'{n} found']} | {row[f'{n} other']}" for n in names)
            print(f"| {row['times']} | {row['pasted']} | {cells} |")
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
