"""How the members read a face: which views of it (``ensemble.json``'s ``views``), and what one costs.

Every member reads the face as cut and its mirror image; more views (small shifts or zooms of the
face, as training's random crops move it) cost another run of every member each, so a set of views
is chosen only where the cross-validated objective pays for it and the ensemble stays within its
time budget.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from memegen.vision.ensemble import Member
from memegen.vision.manifest import MemberEntry, View
from models.train.export import tflite_predict
from models.train.members import Candidate
from models.train.pool import Pool

log = logging.getLogger("build")

# The views every member may read a face in, each besides the face as cut (and all mirrored):
# shifts of 1/24 of the side (2 px at 48) and zooms, as training's random crops move a face.
VIEW_SETS: dict[str, tuple[View, ...]] = {
    "single": ((0.0, 0.0, 1.0),),
    "shifts": ((0.0, 0.0, 1.0), (0.042, 0.0, 1.0), (-0.042, 0.0, 1.0), (0.0, 0.042, 1.0), (0.0, -0.042, 1.0)),
    "zooms": ((0.0, 0.0, 1.0), (0.0, 0.0, 1.08), (0.0, 0.0, 0.92)),
}
# Each extra view is another run of every member: a set with more views must score this much more.
VIEW_GAIN = 0.002


def member_outputs(
    models: dict[str, bytes],
    entries: Sequence[MemberEntry],
    faces: np.ndarray,
    *,
    views: tuple[View, ...] | None = None,
) -> np.ndarray:
    """(n, members, 7) int8 member probabilities for face crops, through the run-time code path.

    Each member reads its own ``views``, or ``views`` where given.
    """
    outputs = []
    for entry in entries:
        size = entry.input_size
        resized = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in faces])
        seen = entry.views if views is None else views
        outputs.append(tflite_predict(models[entry.file], resized, flip=entry.flip, views=seen))
    return np.stack(outputs, 1)


def choose_views(
    models: dict[str, bytes],
    members: list[Candidate],
    pool: Pool,
    *,
    budget_ms: float,
    run_ms: float,
    single: np.ndarray,
) -> tuple[list[Candidate], np.ndarray, dict[str, Any]]:
    """Which views of a face the members read, by the combination's cross-validated score on validation faces.

    A set with more views must score ``VIEW_GAIN`` higher than one with fewer: each view is
    another run of every member; and the whole ensemble (``run_ms`` for one view of every
    member, one thread) must stay within ``budget_ms`` a face. ``single`` is the members'
    outputs on the pool's faces with the one view every face has, already computed. Returns the
    members reading the chosen views, their outputs with them, and the comparison (the record's).
    """
    # One view is how a member reads a face at all: the budget decides only the extra views.
    affordable = {
        name: views for name, views in VIEW_SETS.items() if len(views) == 1 or run_ms * len(views) <= budget_ms
    }
    log.info("one view of every member: %.2f ms; affordable view sets: %s", run_ms, ", ".join(affordable))
    scores: dict[str, float] = {}
    outputs: dict[str, np.ndarray] = {}
    for name, views in affordable.items():
        if name == "single":
            outputs[name] = single
        else:
            outputs[name] = member_outputs(models, [m.entry for m in members], pool.x, views=views)
        scores[name] = pool.cross_validated(outputs[name], list(range(len(members))))
        log.info("views %s: %.4f", name, scores[name])
    by_cost = sorted(scores, key=lambda n: len(VIEW_SETS[n]))
    chosen = by_cost[0]
    for name in by_cost[1:]:
        if scores[name] >= scores[chosen] + VIEW_GAIN:
            chosen = name
    comparison = {
        "chosen": chosen,
        "score": scores,
        "sets": {name: VIEW_SETS[name] for name in scores},
        "one_view_ms": run_ms,
        "budget_ms": budget_ms,
        "min_gain": VIEW_GAIN,
    }
    reading = [m.with_entry(views=VIEW_SETS[chosen]) for m in members]
    return reading, outputs[chosen], comparison


def run_ms(model: bytes, face: np.ndarray, *, size: int, flip: bool, repeat: int = 50) -> float:
    """Median milliseconds of one view of a member (with its mirror image), one thread."""
    member = Member("timed", model, size=size, flip=flip, threads=1)
    member.predict(face)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        member.predict(face)
        times.append((time.perf_counter() - started) * 1000)
    return float(np.median(times))
