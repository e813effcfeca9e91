"""`make bench`: how fast the engine is, one thread, warm.

Every time is reported in milliseconds and as a ratio to a baseline measured
in the same run, a plain full-size ``cv2.imdecode`` of the same JPEG: these
machines are shared and noisy, so compare ratios across runs, not milliseconds.

Goals (issues 2 and 3): the whole ``make`` of a 12 MP photo at most 1.3x the
baseline; per face, detection plus the ensemble under 10 ms; the ensemble
alone under 5 ms per face.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from memegen.detect import align_crop
from memegen.engine import Engine
from memegen.settings import Settings


def median_ms(fn: Callable[[], object], *, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def photo_12mp() -> tuple[str, bytes]:
    """A 4000x3000 JPEG (quality 92) of a real portrait, or of a synthetic scene without the photos."""
    photos = Path(os.environ.get("MEMEGEN_PHOTOS", "../shared/photos"))
    source = photos / "portrait-img13.jpg"
    if source.exists():
        image = np.asarray(cv2.imread(str(source), cv2.IMREAD_COLOR))
        name = f"{source.name} enlarged to 4000x3000"
    else:
        noise = np.random.default_rng(0).integers(0, 255, size=(750, 1000, 3), dtype=np.uint8)
        image = cv2.GaussianBlur(noise, (0, 0), 2)
        name = "synthetic 4000x3000"
    image = cv2.resize(image, (4000, 3000), interpolation=cv2.INTER_CUBIC)
    return name, cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()


def main() -> int:
    cv2.setNumThreads(1)
    settings = Settings.from_env()
    engine = Engine.from_settings(replace(settings, threads=1))
    name, data = photo_12mp()
    buffer = np.frombuffer(data, dtype=np.uint8)
    full = np.asarray(cv2.imdecode(buffer, cv2.IMREAD_COLOR))
    rgb = cv2.cvtColor(cv2.resize(full, (1600, 1200), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    faces = engine.detector.detect(rgb)
    crop = align_crop(gray, faces[0], size=engine.ensemble.crop_size) if faces else gray[:64, :64].copy()
    meme = engine.make(data)

    decode = median_ms(lambda: cv2.imdecode(buffer, cv2.IMREAD_COLOR), repeat=10)
    rows = [
        ("baseline: cv2.imdecode 12 MP", decode),
        ("make (whole engine)", median_ms(lambda: engine.make(data), repeat=10)),
        ("detect (1600x1200)", median_ms(lambda: engine.detector.detect(rgb), repeat=10)),
        ("align_crop (one face)", median_ms(lambda: align_crop(gray, faces[0], size=64) if faces else 0, repeat=200)),
        ("ensemble.classify (one face)", median_ms(lambda: engine.ensemble.classify(crop), repeat=300)),
    ]
    for member in engine.ensemble.members:
        rows.append((f"  member {member.name}", median_ms(partial(member.predict, crop), repeat=300)))
    print(f"photo: {name}, {len(data) / 1e6:.1f} MB, {len(faces)} face(s); one thread, warm, medians")
    print(f"engine stages of the last make: {meme.metadata()['timings_ms']}")
    print(f"{'stage':<34}{'ms':>9}{'x baseline':>12}")
    for label, ms in rows:
        print(f"{label:<34}{ms:>9.2f}{ms / decode:>12.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
