"""Cut every dataset image to the face crop the models see, and split it.

Writes one compressed ``.npz`` (uint8 grayscale faces, ``--size`` square, labels, splits, people) that
training reads, so the detector runs once per image, not once per epoch.
Splits are subject-disjoint where the file names carry the person: a person is
in train or in validation, never both. FER2013 has no identities: its train
folder is split at random, and ``public_test`` is kept apart as the honest test.

    python -m models.train.prepare --datasets ../shared/datasets --out models/work/faces.npz
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from memegen.errors import DatasetError
from memegen.offline.datasets import Sample, face_of, list_samples, read_gray
from memegen.vision.detect import FaceDetector

# FER2013's own resolution: its faces are kept pixel for pixel, and a photo's crop is cut at it.
SIZE = 48
TRAIN, VAL, TEST = 0, 1, 2
POPULATIONS = ("fer2013", "lfw", "jaffe", "imfdb")
# Share of identities (or of images, for FER2013) held out for validation.
VAL_SHARE = {"fer2013": 0.10, "lfw": 0.15, "jaffe": 0.30, "imfdb": 0.25}

log = logging.getLogger("prepare")
_detector: FaceDetector | None = None


def _init(detector_dir: str) -> None:
    global _detector
    _detector = FaceDetector.from_dir(Path(detector_dir))


def _crop(path: Path, size: int) -> tuple[np.ndarray | None, bool]:
    assert _detector is not None
    gray = read_gray(path)
    if gray is None:
        return None, False
    return face_of(gray, _detector, size=size)


def _rank(key: str) -> float:
    """A stable pseudo-random number in [0, 1) for a key (an identity or a file name)."""
    return int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) / 2**32


def held_out(population: str, identities: list[str]) -> frozenset[str]:
    """The identities whose every face goes to validation: the first ones in a stable shuffled order."""
    order = sorted(identities, key=_rank)
    return frozenset(order[: max(1, round(len(order) * VAL_SHARE[population]))])


def split_of(population: str, sample: Sample, held: frozenset[str]) -> int:
    """The split a sample belongs to, subject-disjoint where identities are known (``held``: ``held_out``'s)."""
    if sample.identity is None:
        return VAL if _rank(sample.path.name) < VAL_SHARE[population] else TRAIN
    return VAL if sample.identity in held else TRAIN


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, required=True, help="folder holding jaffe/ imfdb/ lfw/ fer2013/")
    parser.add_argument("--detector", type=Path, default=Path("models/blazeface"))
    parser.add_argument("--out", type=Path, default=Path("models/work/faces.npz"))
    parser.add_argument("--limit", type=int, default=0, help="images per population (0: all), for smoke runs")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--size", type=int, default=SIZE, help="side of the face crops, pixels")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    arrays: dict[str, np.ndarray] = {}
    with ProcessPoolExecutor(args.workers, initializer=_init, initargs=(str(args.detector),)) as pool:
        for population in POPULATIONS:
            try:
                if population == "fer2013":
                    train = list_samples(args.datasets / "fer2013" / "train")
                    test = list_samples(args.datasets / "fer2013" / "public_test")
                else:
                    train, test = list_samples(args.datasets / population), []
            except DatasetError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            if args.limit:
                step = max(1, len(train) // args.limit)
                train, test = train[::step][: args.limit], test[::step][: args.limit]
            identities = sorted({s.identity for s in train if s.identity is not None})
            # Ranked once a population, not once a face: LFW has 12,749 faces of 5,749 people.
            held = held_out(population, identities)
            splits = [split_of(population, s, held) for s in train] + [TEST] * len(test)
            samples = train + test
            started = time.time()
            crops = list(pool.map(_crop, [s.path for s in samples], [args.size] * len(samples), chunksize=64))
            keep = [i for i, (crop, _) in enumerate(crops) if crop is not None]
            skipped = len(samples) - len(keep)
            found = sum(found for _, found in crops)
            log.info(
                "%s: %d images, %d unreadable and skipped, a face found in %d, %.0f s",
                population,
                len(samples),
                skipped,
                found,
                time.time() - started,
            )
            arrays[f"{population}_x"] = np.stack([crops[i][0] for i in keep]).astype(np.uint8)  # type: ignore[misc]
            arrays[f"{population}_y"] = np.array([samples[i].label for i in keep], dtype=np.int8)
            arrays[f"{population}_split"] = np.array([splits[i] for i in keep], dtype=np.int8)
            # "" where the file name carries no person (FER2013): the build's folds keep people whole.
            arrays[f"{population}_identity"] = np.array([samples[i].identity or "" for i in keep], dtype=str)
            arrays[f"{population}_skipped"] = np.array(skipped)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)  # type: ignore[arg-type]
    log.info("wrote %s (%.1f MB)", args.out, args.out.stat().st_size / 1e6)
    return 0


if __name__ == "__main__":
    sys.exit(main())
