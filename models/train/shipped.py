"""Members of the shipped ensemble as candidates of a new build (``--shipped``), without training them again."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from memegen.vision.ensemble import sha256
from memegen.vision.manifest import MANIFEST, Manifest
from models.train.export import tflite_predict
from models.train.members import Candidate, scores_of
from models.train.train import VAL, load_split

log = logging.getLogger("build")

# How far a shipped member's int8 validation accuracy may move from what the build that trained it
# measured (the crops of a few faces change with the detector) before its carried figures are refused.
CARRIED_TOLERANCE = 0.005


@dataclass(frozen=True)
class Shipped:
    """A shipped member as a candidate (under its shipped name and file), its int8 model and, for a
    FER2013 member, its recipe's record (``training.json``'s ``fer_recipes``) for the card's table."""

    candidate: Candidate
    model: bytes
    recipe: dict[str, Any] | None


def shipped_names(out: Path) -> list[str]:
    """The members of the ensemble in ``out`` (none where it has no manifest)."""
    return [e.name for e in Manifest.read(out).members] if (out / MANIFEST).exists() else []


def shipped_member(data: dict[str, np.ndarray], out: Path, name: str) -> Shipped:
    """A member of the shipped ensemble in ``out``, as a candidate of this build, and its int8 model.

    Its int8 model is kept as it is; what only its float state could measure (its float scores,
    its history) comes from the ``training.json`` of the build that trained it, and its int8
    validation score is measured again. The faces are cut by the detector of the day, so a few
    crops may differ from that build's; a score more than ``CARRIED_TOLERANCE`` away means other
    faces altogether, where the carried figures would not hold, and the build stops. The candidate
    keeps its shipped name and file: ``place`` gives it this build's.
    """
    entry = Manifest.read(out).member(name)
    record = json.loads((out / "training.json").read_text())
    trained = next(m for m in record["members"] if m["name"] == name)
    model = (out / entry.file).read_bytes()
    if sha256(model) != entry.sha256:
        raise RuntimeError(f"{name}: {entry.file} is not the model its manifest names")
    assert entry.population is not None
    val_set = load_split(data, entry.population, VAL, entry.input_size)
    int8 = scores_of(val_set.y, tflite_predict(model, val_set.x))
    then = trained["val"]["int8"]["accuracy"]
    if abs(int8["accuracy"] - then) > CARRIED_TOLERANCE:
        raise RuntimeError(
            f"{name}: int8 validation accuracy {int8['accuracy']:.4f}, its build measured {then:.4f}:"
            " not the same validation faces"
        )
    candidate = Candidate(
        entry=entry,
        history=trained["history"],
        val={"float": trained["val"]["float"], "int8": int8},
        public_test_float=trained["public_test_float"],
        shipped={"val_int8_then": then},
        state=None,
    )
    recipe = next((r for r in record["report"].get("fer_recipes", []) if r["recipe"] == entry.recipe), None)
    log.info("shipped member %s: val int8 %.4f, its build measured %.4f", name, int8["accuracy"], then)
    return Shipped(candidate, model, recipe)


def place(out: Path, shipped: Shipped, name: str) -> Candidate:
    """A shipped candidate under this build's ``name``, its model written to ``out/NAME.tflite``."""
    (out / f"{name}.tflite").write_bytes(shipped.model)
    return shipped.candidate.with_entry(name=name, file=f"{name}.tflite")
