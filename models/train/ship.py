"""Choose what ships from trained members, judged per population: ``python -m models.train.ship``.

    python -m models.train.ship --data models/work/faces.npz --cuts models/work/faces96.npz \\
        --shipped fer2013 fer2013_2 --states models/work/fer/fer_lite.pt

The candidates are members of the shipped ensemble (their int8 files as they are) and float states
that ``models.train.fer`` trained (exported to int8 here). Each reads every population's validation
faces cut at its own side (``--cuts`` holds the other sides' crops of the same images, as ``prepare
--size`` cut them). Every set of candidates within the time budget is combined (one weight per member
per class) and judged by two-fold cross-validation on the pooled validation faces, by an objective that
averages the populations (FER2013, LFW, JAFFE, IMFDB), none at weight 0. Then:

- a set that reads any population's validation faces worse than the shipped ensemble does, beyond the
  noise of that population's faces (McNemar's standard error of the change), is refused;
- of the rest, the best set ships only where it beats the best single member by at least ``MIN_EDGE``
  (one point) on the pooled objective; otherwise the best single member ships alone;
- and it replaces the shipped set (where that still passes these rules) only where it beats it on the
  objective by more than the noise of the change (McNemar's standard error, populations weighted).

``public_test`` chooses nothing: it is scored for the record once the choice is made.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from memegen.vision.crop import Crop
from memegen.vision.manifest import Manifest, MemberEntry
from models.train.export import tflite_predict, to_int8_tflite
from models.train.members import FER_WITH_OTHERS, POPULATION_INFO, exported_entry, load_net, scores_of
from models.train.members import Candidate as MemberRecord
from models.train.net import Config
from models.train.outputs import manifest_weights
from models.train.pool import Pool, choose_combination
from models.train.prepare import POPULATIONS
from models.train.train import TEST, TRAIN, VAL, at_side, predict
from models.train.views import run_ms

log = logging.getLogger("ship")

OBJECTIVE = "populations alike"
# An ensemble ships only where it reads the pooled validation faces this much better than its best member.
MIN_EDGE = 0.01
# A population may read worse than under the shipped ensemble by at most this many standard errors.
GUARD_SE = 1.0
# The members' time a face, one thread: the faces stage (detection, the crops, the reading) is to take at
# most 15 ms a photo (median over the test photos, make bench); the reading gets 6.5 of them, under the
# 10 ms a face issue 35 allows it, and detection and the crops the rest, with a margin. On the scale of
# the machine the committed ship.json's times were taken on (host_scale carries it from run to run).
BUDGET_MS = 6.5


@dataclass(frozen=True)
class Faces:
    """The prepared crops of every side (``prepare``'s arrays by side), the same images in the same order."""

    by_side: dict[int, dict[str, np.ndarray]]

    @classmethod
    def load(cls, paths: list[Path]) -> Faces:
        """Read ``prepare``'s files; refuses files whose images, labels or splits differ."""
        by_side: dict[int, dict[str, np.ndarray]] = {}
        for path in paths:
            data = dict(np.load(path))
            by_side[int(data["fer2013_x"].shape[-1])] = data
        first = next(iter(by_side.values()))
        for side, data in by_side.items():
            for population in POPULATIONS:
                for key in ("y", "split", "identity"):
                    if not np.array_equal(data[f"{population}_{key}"], first[f"{population}_{key}"]):
                        raise ValueError(f"the {side} px crops' {population}_{key} differ: not the same images")
        return cls(by_side)

    @property
    def base(self) -> dict[str, np.ndarray]:
        """The smallest side's arrays: what the pool and the ensemble's crop are."""
        return self.by_side[min(self.by_side)]

    def split(self, population: str, split: int, *, cut: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Faces (cut at ``cut``, resized to ``size``) and labels of one population's split."""
        data = self.by_side[cut]
        mask = data[f"{population}_split"] == split
        return at_side(data[f"{population}_x"][mask], size), data[f"{population}_y"][mask].astype(np.int64)

    def pooled(self, *, cut: int, size: int) -> np.ndarray:
        """Every population's validation faces, in the pool's order (``Pool.of``)."""
        return np.concatenate([self.split(p, VAL, cut=cut, size=size)[0] for p in POPULATIONS])


@dataclass(frozen=True)
class Candidate:
    """A member that may ship: its manifest entry, its int8 model, whether it ships today, and for a
    float state what the build's record keeps of it (``training.json``'s ``members``)."""

    entry: MemberEntry
    model: bytes
    shipped: bool
    record: dict[str, Any] | None = None
    trained_cut: int = 0  # the side its training faces were cut at; 0: its ``cut``

    @property
    def cut(self) -> int:
        assert self.entry.crop_size is not None
        return self.entry.crop_size

    @property
    def shown(self) -> str:
        """The candidate as ship's log and the model card name it (``shown_name``)."""
        return shown_name(self.entry.name, self.entry.flip, cut=self.cut, trained_cut=self.trained_cut or self.cut)


def shipped_candidates(models: Path, names: list[str], base_side: int) -> list[Candidate]:
    """Members of the ensemble in ``models`` by name, with their cut made explicit."""
    manifest = Manifest.read(models)
    out = []
    for name in names:
        entry = manifest.member(name)
        cut = entry.crop_size or int((manifest.crop or {}).get("size", base_side))
        out.append(Candidate(replace(entry, crop_size=cut), (models / entry.file).read_bytes(), shipped=True))
    return out


def state_candidate(path: Path, faces: Faces) -> Candidate:
    """A float state of ``models.train.fer`` exported to int8, calibrated on 400 of its training faces.

    Its cut is the side it recorded, or else the smallest prepared side at least its input side (the
    crops it was trained on were cut there and shrunk).
    """
    record = torch.load(path, weights_only=False)
    config = Config(**record["config"])
    cut = int(record.get("crop_size") or min(s for s in faces.by_side if s >= config.size))
    net = load_net(config, record["state"]).eval()
    train_x, _ = faces.split("fer2013", TRAIN, cut=cut, size=config.size)
    calibration = train_x[np.random.default_rng(0).permutation(len(train_x))[:400]]
    model = to_int8_tflite(net, calibration)
    # What the conversion to int8 costs, on the same faces, one view each (as the build's members).
    val_x, val_y = faces.split("fer2013", VAL, cut=cut, size=config.size)
    val = {"float": scores_of(val_y, predict(net, val_x)), "int8": scores_of(val_y, tflite_predict(model, val_x))}
    log.info(
        "state %s: fer2013 val float %.4f int8 %.4f", record["name"], val["float"]["accuracy"], val["int8"]["accuracy"]
    )
    test_x, test_y = faces.split("fer2013", TEST, cut=cut, size=config.size)
    # Float, face and mirror image, as the card's other members were measured.
    public_float = (predict(net, test_x) + predict(net, np.ascontiguousarray(test_x[:, :, ::-1]))) / 2
    name = record["name"]
    entry = exported_entry(
        name,
        model,
        config,
        population="fer2013",
        datasets=FER_WITH_OTHERS.get(record.get("data", "fer2013")) or POPULATION_INFO["fer2013"],
        init="imagenet" if config.arch == "lite0" else "scratch",
        crop_size=cut,
        recipe=name,
    )
    entry = replace(entry, float_bytes=4 * sum(int(v.numel()) for v in record["state"].values()))
    kept = {
        "history": record["history"],
        "held_epoch": record.get("epoch"),
        "val": val,
        "public_test_float": scores_of(test_y, public_float),
    }
    return Candidate(entry, model, shipped=False, record=kept)


def variants(candidates: list[Candidate], *, base: int) -> tuple[list[Candidate], list[int]]:
    """Each candidate reading the face with its mirror image (twice the time) and without, and the candidate
    behind each: the time budget may buy a third member rather than a second view of two. A candidate
    trained on faces cut at another side than ``base`` (the ensemble's crop) is offered at ``base`` too,
    resized to its input: FER2013's faces are 48 px to begin with, and a finer cut of them is no finer."""
    out, groups = [], []
    for index, c in enumerate(candidates):
        for cut in (c.cut, base) if c.cut != base else (c.cut,):
            for flip in (True, False):
                shipped = c.shipped and c.entry.flip == flip and cut == c.cut
                entry = replace(c.entry, flip=flip, crop_size=cut)
                out.append(replace(c, entry=entry, shipped=shipped, trained_cut=c.cut if cut != c.cut else 0))
                groups.append(index)
    return out, groups


def shown_name(name: str, flip: bool, *, cut: int = 0, trained_cut: int = 0) -> str:
    """A candidate as ship's log and the model card name it: the way it reads a face, where not with its
    mirror, and the side it is cut at, where not the one it was trained on."""
    shown = f"{name} ({cut} px cut)" if cut != trained_cut else name
    return shown if flip else f"{shown} (no mirror)"


def readings(candidates: list[Candidate], faces: Faces, *, test: bool = False) -> np.ndarray:
    """(n, members, 7): each candidate on the pooled validation faces (or FER2013's public test), with its
    mirror image where it reads one, each at its own cut.

    Each model reads the faces and their mirror images once: a candidate offered with and without its
    mirror view (``variants``) shares the plain reading, and the average of the two is what the run-time
    member computes with ``flip`` (one view).
    """
    read: dict[tuple[bytes, int, int, bool], np.ndarray] = {}
    out = []
    for c in candidates:
        if test:
            x, _ = faces.split("fer2013", TEST, cut=c.cut, size=c.entry.input_size)
        else:
            x = faces.pooled(cut=c.cut, size=c.entry.input_size)
        views = []
        for mirrored in (False, True) if c.entry.flip else (False,):
            key = (c.model, c.cut, c.entry.input_size, mirrored)
            if key not in read:
                read[key] = tflite_predict(c.model, np.ascontiguousarray(x[:, :, ::-1]) if mirrored else x)
            views.append(read[key])
        out.append(sum(views[1:], views[0]) / len(views))
    return np.stack(out, axis=1)


def population_se(pool: Pool, hits_after: np.ndarray, hits_before: np.ndarray, index: int) -> float:
    """McNemar's standard error of one population's accuracy change: faces read differently over their count."""
    change = (hits_after.astype(np.float64) - hits_before)[pool.origin == index]
    return float(np.sqrt(np.mean(change**2) / len(change))) if len(change) else 0.0


def objective_se(pool: Pool, hits_after: np.ndarray, hits_before: np.ndarray) -> float:
    """McNemar's standard error of the objective's change: each population's, weighted by its share."""
    ses = [population_se(pool, hits_after, hits_before, index) for index in range(len(POPULATIONS))]
    return float(np.sqrt(sum((share * se) ** 2 for share, se in zip(pool.share, ses, strict=True))))


def host_scale(recorded: dict[str, Any] | None, candidates: list[Candidate], costs: list[float]) -> float:
    """This machine's times onto the scale of the one that wrote ``recorded`` (the last ``ship.json``).

    Hosts differ: one without AVX-512 reads int8 several times slower, and the budget would pick members
    by the machine a session drew. The shipped members, timed on both, give the factor; 1 where the record
    has none of them (a first ship).
    """
    before = {(c["name"], c["flip"]): c["ms"] for c in (recorded or {}).get("candidates", [])}
    pairs = [
        (before[(c.entry.name, c.entry.flip)], ms)
        for c, ms in zip(candidates, costs, strict=True)
        if c.shipped and (c.entry.name, c.entry.flip) in before
    ]
    return sum(b for b, _ in pairs) / sum(ms for _, ms in pairs) if pairs else 1.0


def judge(
    probs: np.ndarray,
    pool: Pool,
    costs: list[float],
    shipped: list[int],
    budget_ms: float,
    *,
    groups: list[int] | None = None,
) -> dict[str, Any]:
    """Every set of members within ``budget_ms``, judged; the guard against the shipped set, and the choice.

    ``groups`` names the member behind each column, where one member is offered in several ways (with and
    without its mirror view, ``variants``): a set holds at most one way of each member.
    """
    groups = groups if groups is not None else list(range(probs.shape[1]))
    # Every population counts (OBJECTIVE): its readings are the accuracies of the cross-validated hits,
    # which are fitted once a set.
    baseline = pool.hits(probs, shipped)
    baseline_reads = pool.accuracies(baseline)
    sets: list[dict[str, Any]] = []
    for count in range(1, probs.shape[1] + 1):
        for members in itertools.combinations(range(probs.shape[1]), count):
            if len({groups[m] for m in members}) < len(members):
                continue
            ms = sum(costs[m] for m in members)
            hits = pool.hits(probs, list(members))
            reads = pool.accuracies(hits)
            losses = {}
            for index, population in enumerate(POPULATIONS):
                se = population_se(pool, hits, baseline, index)
                drop = baseline_reads[population] - reads[population]
                if drop > GUARD_SE * se and drop > 0:
                    losses[population] = {"drop": drop, "se": se}
            sets.append(
                {
                    "members": list(members),
                    "objective": pool.weighted(reads),
                    "populations": reads,
                    "ms": ms,
                    "within_budget": ms <= budget_ms,
                    "refused": losses,
                }
            )
    allowed = [s for s in sets if s["within_budget"] and not s["refused"]]
    singles = [s for s in allowed if len(s["members"]) == 1]
    ensembles = [s for s in allowed if len(s["members"]) > 1]
    best_single = max(singles, key=lambda s: s["objective"], default=None)
    best_ensemble = max(ensembles, key=lambda s: s["objective"], default=None)

    floor = float("-inf") if best_single is None else best_single["objective"] + MIN_EDGE

    def has_edge(judged: dict[str, Any]) -> bool:
        """One member, or several reading ``MIN_EDGE`` above the best single member."""
        return len(judged["members"]) == 1 or judged["objective"] >= floor

    if best_ensemble and has_edge(best_ensemble):
        chosen, why = best_ensemble, "the best set beats its best single member by the edge needed"
    elif best_single:
        chosen, why = best_single, "no set beats the best single member by the edge needed"
    else:
        chosen, why = next(s for s in sets if s["members"] == shipped), "nothing else passes the guard"
    # A change of what ships must be worth it: the set that would replace a shipped set the rules above
    # still allow must beat it beyond the noise of the change, or a member joins (and costs its time) for
    # a gain that the next draw of faces would undo.
    current = next((s for s in allowed if s["members"] == shipped), None)
    if current is not None and has_edge(current) and chosen is not current:
        noise = objective_se(pool, pool.hits(probs, chosen["members"]), baseline)
        if chosen["objective"] - current["objective"] <= GUARD_SE * noise:
            chosen, why = current, "no set beats the shipped one beyond the noise of the change"
    return {
        "objective": OBJECTIVE,
        "min_edge": MIN_EDGE,
        "guard_se": GUARD_SE,
        "budget_ms": budget_ms,
        "shipped": shipped,
        "sets": sets,
        "chosen": chosen["members"],
        "why": why,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("models/work/faces.npz"), help="prepare's crops (48 px)")
    parser.add_argument(
        "--cuts", type=Path, nargs="*", default=[], help="prepare's crops of the same images, other sides"
    )
    parser.add_argument("--models", type=Path, default=Path("models"), help="the shipped ensemble, rewritten")
    parser.add_argument(
        "--shipped", nargs="*", default=[], help="members of the shipped ensemble to keep as candidates"
    )
    parser.add_argument("--states", type=Path, nargs="*", default=[], help="float states of models.train.fer")
    parser.add_argument(
        "--budget-ms", type=float, default=BUDGET_MS, help="all members' time a face, one thread (%(default)s)"
    )
    parser.add_argument("--dry-run", action="store_true", help="judge and report; write nothing")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    shipped_names = args.shipped or [entry.name for entry in Manifest.read(args.models).members]
    torch.set_num_threads(2)
    faces = Faces.load([args.data, *args.cuts])
    pool = Pool.of(faces.base, OBJECTIVE, seed=0)
    candidates = shipped_candidates(args.models, shipped_names, min(faces.by_side))
    candidates += [state_candidate(path, faces) for path in args.states]
    candidates, groups = variants(candidates, base=min(faces.by_side))
    probs = readings(candidates, faces)
    # Timed on one face at each member's own cut and side, with its mirror image where it reads one.
    costs = []
    for c in candidates:
        face = at_side(faces.by_side[c.cut]["fer2013_x"][:1], c.entry.input_size)[0]
        costs.append(run_ms(c.model, face, size=c.entry.input_size, flip=c.entry.flip))
    recorded = args.models / "ship.json"
    scale = host_scale(json.loads(recorded.read_text()) if recorded.exists() else None, candidates, costs)
    log.info("times on the scale of the machine that wrote %s: this one's times x %.2f", recorded, scale)
    costs = [ms * scale for ms in costs]
    shipped = [i for i, c in enumerate(candidates) if c.shipped]
    verdict = judge(probs, pool, costs, shipped, args.budget_ms, groups=groups)
    names = [c.shown for c in candidates]
    for s in verdict["sets"]:
        log.info(
            "%s: objective %.4f, %s, %.1f ms%s",
            "+".join(names[m] for m in s["members"]),
            s["objective"],
            ", ".join(f"{p} {v:.4f}" for p, v in s["populations"].items()),
            s["ms"],
            f", refused ({', '.join(s['refused'])})" if s["refused"] else "",
        )
    log.info("chosen: %s (%s)", " + ".join(names[m] for m in verdict["chosen"]), verdict["why"])
    test_probs = readings(candidates, faces, test=True)
    _, test_y = faces.split("fer2013", TEST, cut=min(faces.by_side), size=min(faces.by_side))
    record = {
        "candidates": [
            {
                "name": c.entry.name,
                "flip": c.entry.flip,
                "shipped": c.shipped,
                "cut": c.cut,
                "trained_cut": c.trained_cut or c.cut,
                "input_size": c.entry.input_size,
                "ms": costs[i],
                "val": {p: float(pool.per_population(probs[:, i])[p]) for p in POPULATIONS},
                "public_test": scores_of(test_y, test_probs[:, i])["accuracy"],
            }
            for i, c in enumerate(candidates)
        ],
        "host_scale": scale,
        **verdict,
    }
    log.info("public_test: %s", {names[i]: round(c["public_test"], 4) for i, c in enumerate(record["candidates"])})
    if args.dry_run:
        print(json.dumps(record, indent=1, default=float))
        return 0
    if verdict["chosen"] == shipped:
        # The shipped ensemble stays as it is, weights included: only the judgement is recorded.
        (args.models / "ship.json").write_text(json.dumps(record, indent=1, default=float) + "\n")
        log.info("the shipped ensemble stays")
        return 0
    write(args.models, candidates, verdict["chosen"], probs, pool, record)
    return 0


def write(
    models: Path, candidates: list[Candidate], chosen: list[int], probs: np.ndarray, pool: Pool, record: dict
) -> None:
    """The chosen members' files, the manifest (weights fitted on every validation face) and the record."""
    method, weights, comparison = choose_combination(probs[:, chosen], pool)
    old = Manifest.read(models)
    base = Crop.from_manifest(dict(old.crop or {})).size
    entries = []
    for index in chosen:
        candidate = candidates[index]
        (models / candidate.entry.file).write_bytes(candidate.model)
        # A member cut at the ensemble's own side says nothing more.
        entries.append(replace(candidate.entry, crop_size=None if candidate.cut == base else candidate.cut))
    kept = {e.file for e in entries}
    for entry in old.members:
        if entry.file not in kept:
            (models / entry.file).unlink(missing_ok=True)
    manifest = replace(
        old,
        members=tuple(entries),
        weights=manifest_weights(weights),
        combination=method,
    )
    manifest.write(models)
    record["combination"] = {"chosen": method, "comparison": comparison}
    (models / "ship.json").write_text(json.dumps(record, indent=1, default=float) + "\n")
    # The build's record keeps every shipped member: the new ones join it (the card's members table).
    training = json.loads((models / "training.json").read_text())
    known = {m["name"] for m in training["members"]}
    for entry, index in zip(entries, chosen, strict=True):
        extra = candidates[index].record
        if entry.name not in known and extra is not None:
            own = pool.origin == POPULATIONS.index("fer2013")
            val = {"int8": scores_of(pool.y[own], probs[own, index])}
            written = MemberRecord(
                entry=entry,
                history=extra["history"],
                val=val,
                public_test_float=extra["public_test_float"],
                held_epoch=extra["held_epoch"],
            )
            training["members"].append(written.record())
    training["members"] = [m for m in training["members"] if m["name"] in {e.name for e in entries}]
    (models / "training.json").write_text(json.dumps(training, indent=1, default=float) + "\n")
    log.info("wrote %s: %s, %s weights", models, ", ".join(e.name for e in entries), method)


if __name__ == "__main__":
    raise SystemExit(main())
