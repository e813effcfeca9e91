"""What the build writes: the public-test report, the manifest, ``training.json`` and its work record.

``models/ensemble.json`` (through ``memegen.vision.manifest.Manifest``) is what inference loads;
``models/training.json`` is the build's record the model card is written from; ``build.json`` in
``--work`` is what a later build resumes from (its searches, and its members for ``--keep``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from memegen.labels import LABELS
from memegen.vision.crop import CROP_SCALE, CROP_SHIFT
from memegen.vision.ensemble import view_of
from memegen.vision.manifest import Manifest
from models.train.members import Candidate, load_net, scores_of
from models.train.net import Config
from models.train.pool import MIN_GAIN, OBJECTIVE, SE_RULE, Pool, val_people
from models.train.prepare import POPULATIONS
from models.train.search import Trial
from models.train.selection import FIRST_READS, Selection
from models.train.train import TEST, predict
from models.train.views import member_outputs
from models.train.weights import PENALTIES, SELECTION_METHOD, combine

WORK_RECORD = "build.json"


@dataclass(frozen=True)
class WorkRecord:
    """The build's record in ``--work`` (``build.json``): what a later build resumes from.

    ``search`` holds every population's trials searched so far (a build searches only the ones
    missing), ``members`` the last finished build's members as ``training.json`` holds them (for
    ``--keep``), ``fer_recipes`` the last FER2013 recipes trained (a build without ``--states``
    reports those).
    """

    path: Path
    search: dict[str, list[Trial]] = field(default_factory=dict)
    members: list[dict[str, Any]] = field(default_factory=list)
    fer_recipes: list[dict[str, Any]] | None = None

    @classmethod
    def read(cls, work: Path) -> WorkRecord:
        """The record in ``work``, or an empty one where there is none yet."""
        path = work / WORK_RECORD
        if not path.exists():
            return cls(path)
        record = json.loads(path.read_text())
        return cls(path, record.get("search", {}), record.get("members", []), record.get("fer_recipes"))

    def with_search(self, population: str, trials: list[Trial]) -> WorkRecord:
        """The record with ``population``'s trials."""
        return replace(self, search={**self.search, population: trials})

    def write(self, **finished: Any) -> None:
        """Write ``build.json``: the searches, the recipes, the members, and what a finished build adds."""
        record: dict[str, Any] = {"search": self.search}
        if self.fer_recipes is not None:
            record["fer_recipes"] = self.fer_recipes
        if self.members and "members" not in finished:  # a finished build writes its own, after the steps
            record["members"] = self.members
        self.path.write_text(json.dumps(record | finished, indent=1))


def public_test_report(
    data: dict[str, np.ndarray], members: list[Candidate], models: dict[str, bytes], weights: np.ndarray
) -> tuple[list[Candidate], dict[str, Any]]:
    """The ensemble and each member (int8) on FER2013's public test, after every choice was made.

    Returns the members with their float score (``public_test_float``: its views and mirror
    images read as the int8 member reads them, for the card's float vs int8 column), and the report.
    """
    faces = data["fer2013_x"][data["fer2013_split"] == TEST]
    y = data["fer2013_y"][data["fer2013_split"] == TEST].astype(np.int64)
    probs = member_outputs(models, [m.entry for m in members], faces)
    scored: list[Candidate] = []
    for member in members:
        if member.state is None:  # shipped: its float score is the one its build measured
            scored.append(member)
            continue
        entry = member.entry
        assert entry.config is not None
        size = entry.input_size
        net = load_net(Config(**entry.config), member.state)
        resized = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in faces])
        runs = []
        for view in entry.views:
            seen = np.stack([view_of(f, view) for f in resized])
            runs.append(predict(net, seen))
            if entry.flip:
                runs.append(predict(net, np.ascontiguousarray(seen[:, :, ::-1])))
        scored.append(replace(member, public_test_float=scores_of(y, np.mean(runs, axis=0))))
    report = {
        "ensemble": scores_of(y, combine(weights, probs)),
        "members": {m.name: scores_of(y, probs[:, i]) for i, m in enumerate(members)},
    }
    return scored, report


def build_report(
    data: dict[str, np.ndarray],
    pool: Pool,
    *,
    public_test: dict[str, Any],
    method: str,
    comparison: dict[str, Any],
    selection: Selection,
    fer_recipes: list[dict[str, Any]],
    views: dict[str, Any],
) -> dict[str, Any]:
    """``training.json``'s ``report``: every choice the build made and what it was made on."""
    return {
        "public_test": public_test,
        "objective": {"name": OBJECTIVE, "shares": dict(zip(POPULATIONS, pool.share.tolist(), strict=True))},
        "people_folds": [name for name in POPULATIONS if val_people(data, name) is not None],
        "combination": {
            "chosen": method,
            "cross_validated": comparison["methods"],
            "selection_method": SELECTION_METHOD,
            "penalties": PENALTIES,
        },
        "objectives": comparison["objectives"],
        "fer_recipes": fer_recipes,
        "greedy": selection.greedy,
        "candidates": selection.candidates,
        "pruning": selection.pruning,
        "min_gain": MIN_GAIN,
        "se_rule": SE_RULE,
        "first_reads": FIRST_READS,
        "views": views,
    }


def manifest_weights(weights: np.ndarray) -> tuple[tuple[float, ...], ...]:
    """One weight per member per class as the manifest holds them (five decimals), whoever writes it."""
    return tuple(tuple(row) for row in np.asarray(weights, dtype=np.float64).round(5).tolist())


def manifest_of(
    data: dict[str, np.ndarray], members: list[Candidate], *, weights: np.ndarray, method: str, report: dict[str, Any]
) -> Manifest:
    """The manifest of the ensemble the build chose (the card adds its own figures later)."""
    return Manifest(
        labels=LABELS,
        # The crop prepare cut the faces with: its side is the arrays' own.
        crop={"size": int(data["fer2013_x"].shape[1]), "scale": CROP_SCALE, "shift": CROP_SHIFT, "color": "grayscale"},
        members=tuple(m.entry for m in members),
        weights=manifest_weights(weights),
        combination=method,
        metrics={
            "public_test_accuracy": report["public_test"]["ensemble"]["accuracy"],
            "public_test_macro_recall": report["public_test"]["ensemble"]["macro_recall"],
        },
    )


def write_outputs(
    out: Path,
    work: WorkRecord,
    data: dict[str, np.ndarray],
    members: list[Candidate],
    *,
    weights: np.ndarray,
    method: str,
    report: dict[str, Any],
    selection: Selection,
    views: dict[str, Any],
) -> None:
    """The manifest, the members' weights for a later ``--keep``, the work record and training.json.

    Member files of earlier builds, and members left out, go: the folder holds what the manifest names.
    """
    for member in members:
        if member.state is not None:
            torch.save(member.state, work.path.parent / f"{member.name}.pt")
    manifest_of(data, members, weights=weights, method=method, report=report).write(out)
    for stale in set(out.glob("*.tflite")) - {out / m.entry.file for m in members}:
        stale.unlink()
    records = [m.record() for m in members]
    work.write(
        greedy=selection.greedy,
        candidates=selection.candidates,
        pruning=selection.pruning,
        views=views,
        members=records,
        report=report,
    )
    (out / "training.json").write_text(
        json.dumps({"search": work.search, "members": records, "report": report}, indent=1) + "\n"
    )
