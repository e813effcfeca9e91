"""The peer's side of ``make bench``: the ``fer`` package's ``detect_emotions`` on the same photos.

Run by ``scripts.bench`` in its own environment (``.venv-peer``, from ``requirements-peer.txt``):
``fer`` needs TensorFlow, which never enters the functions' or the tests' environment. Reads
photo paths (one per line) on stdin, writes one JSON object per photo on stdout:
``{"photo": ..., "ms": [...], "faces": N}``, every run timed on one thread, warm.

    .venv-peer/bin/python scripts/peer.py --repeat 3 < photos.txt
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

# One thread everywhere, as MemeGen is measured: set before TensorFlow and OpenCV start their pools.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per photo, after one warm-up run")
    args = parser.parse_args(argv)
    import cv2
    from fer.fer import FER

    try:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except (ImportError, RuntimeError):
        pass
    cv2.setNumThreads(1)
    detector = FER()
    print(json.dumps({"peer": "fer", "version": _version("fer")}), flush=True)
    for line in sys.stdin:
        path = line.strip()
        if not path:
            continue
        # The same decoded input MemeGen's stages get: the photo's pixels, upright, BGR as fer expects.
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        faces = detector.detect_emotions(image)
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            faces = detector.detect_emotions(image)
            times.append((time.perf_counter() - started) * 1000)
        print(json.dumps({"photo": path, "ms": times, "faces": len(faces)}), flush=True)
    return 0


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


if __name__ == "__main__":
    raise SystemExit(main())
