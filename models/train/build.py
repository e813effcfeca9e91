"""Search, train, quantize and combine the ensemble; write the models, manifest and card.

    python -m models.train.build --data models/work/faces.npz

For every population (FER2013, LFW, JAFFE, IMFDB): a small random search over
architecture, input size and training settings, each trial judged on the
population's validation split; the best trial is trained in full, converted to
TFLite and quantized to int8 with calibration faces. The members are then
combined with one weight per member per class, four ways (plain average,
per-class validation precision as the original MemeGen did, weights fitted to
validation log-loss, the same held close to the average), judged by two-fold
cross-validation on the pooled validation splits; FER2013's public test is never
used to choose anything.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from memegen.crop import CROP_SCALE, CROP_SHIFT
from memegen.ensemble import MANIFEST, SINGLE_VIEW, Member, read_manifest, sha256, view_of
from memegen.labels import LABELS
from models.train.export import tflite_predict, to_float_tflite, to_int8_tflite
from models.train.net import Config, ExpressionNet, macs
from models.train.train import TEST, TRAIN, VAL, Split, load_split, metrics, predict, train

log = logging.getLogger("build")
POPULATIONS = ("fer2013", "lfw", "jaffe", "imfdb")
POPULATION_INFO = {
    "fer2013": "FER2013 train (in the wild, 48x48, sharp); split 90/10 at random; public_test kept for the report",
    "lfw": "LFW with muxspace expression labels (famous people); 15% of identities held out",
    "jaffe": "JAFFE (Japanese women, posed); 3 of 10 subjects held out",
    "imfdb": "IMFDB (Indian film actors); 2 of 8 actors held out",
}


# What a FER2013 member learnt from besides FER2013's train split, by its recipe's ``data``
# ("all": models.train.fer's; "posed": models.train.gpu's, whose pack leaves LFW out).
FER_WITH_OTHERS = {
    "all": (
        "FER2013 train (in the wild, 48x48, sharp), 90% at random, with the LFW, JAFFE and IMFDB train splits"
        " (their validation people held out); public_test kept for the report"
    ),
    "posed": (
        "FER2013 train (in the wild, 48x48, sharp), 90% at random, with the JAFFE and IMFDB train splits"
        " (their validation people held out); public_test kept for the report"
    ),
}


def _space(population: str) -> dict[str, list[Any]]:
    space: dict[str, list[Any]] = {
        "size": [40, 48],
        "width": [24, 32],
        "lr": [1e-3, 2e-3, 4e-3],
        "balance": [0.3, 0.6, 1.0],
        "dropout": [0.2, 0.4],
    }
    if population != "fer2013":
        space["init"] = ["fer2013", "scratch"]
    return space


def _subset(split: Split, share: float, seed: int) -> Split:
    if share >= 1:
        return split
    idx = np.random.default_rng(seed).permutation(len(split.y))[: int(len(split.y) * share)]
    return Split(split.x[idx], split.y[idx])


def search(
    population: str,
    data: dict[str, np.ndarray],
    *,
    trials: int,
    epochs: int,
    share: float,
    init: dict[str, Any] | None,
    seed: int,
) -> list[dict[str, Any]]:
    """Random search: ``trials`` configurations, each trained ``epochs`` on ``share`` of train."""
    space = _space(population)
    rng = random.Random(f"{population}-{seed}")
    results: list[dict[str, Any]] = []
    seen: set[str] = set()
    while len(results) < trials and len(seen) < 500:
        choice = {k: rng.choice(v) for k, v in space.items()}
        start = choice.pop("init", "scratch")
        if start == "fer2013" and init is not None:
            # The FER2013 member's weights fit only its own architecture.
            choice.update(width=init["config"].width, stages=init["config"].stages, arch=init["config"].arch)
        key = json.dumps([choice, start], sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        config = Config(epochs=epochs, **choice)
        train_set = _subset(load_split(data, population, TRAIN, config.size), share, seed)
        val_set = load_split(data, population, VAL, config.size)
        started = time.time()
        _, history = train(
            config, train_set, val_set, seed=seed, init=init["state"] if start == "fer2013" and init else None
        )
        best = max(history, key=lambda row: row["val_accuracy"])
        results.append(
            {
                "config": config.to_dict(),
                "init": start,
                "val_accuracy": best["val_accuracy"],
                "val_macro_recall": best["val_macro_recall"],
                "macs": macs(config),
                "seconds": round(time.time() - started, 1),
            }
        )
        log.info("search %s trial %d: %s", population, len(results), json.dumps(results[-1]))
    return results


def _score(y: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    scores = metrics(y, probs.argmax(1))
    scores["log_loss"] = float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-7, 1))))
    return scores


def build_member(
    name: str,
    population: str,
    data: dict[str, np.ndarray],
    chosen: dict[str, Any],
    *,
    epochs: int,
    init: dict[str, Any] | None,
    out_dir: Path,
    work: Path,
    seed: int,
) -> dict[str, Any]:
    """Train the chosen configuration in full, then export it (``export_member``)."""
    config = replace(Config(**chosen["config"]), epochs=epochs)
    net, history = train(
        config,
        load_split(data, population, TRAIN, config.size),
        load_split(data, population, VAL, config.size),
        seed=seed,
        init=init["state"] if chosen["init"] == "fer2013" and init else None,
        checkpoint=work / f"{name}.ckpt",
    )
    return export_member(
        name, population, data, net, config, history=history, init=chosen["init"], out_dir=out_dir, work=work, seed=seed
    )


def export_member(
    name: str,
    population: str,
    data: dict[str, np.ndarray],
    net: ExpressionNet,
    config: Config,
    *,
    history: list[dict[str, float]],
    init: str,
    out_dir: Path,
    work: Path,
    seed: int,
    datasets: str | None = None,
) -> dict[str, Any]:
    """Export a trained member to float and int8 TFLite, check the conversion, and score both.

    ``datasets`` says what it learnt from, when that is more than its population's train split.
    """
    train_set = load_split(data, population, TRAIN, config.size)
    val_set = load_split(data, population, VAL, config.size)
    net = net.to(memory_format=torch.contiguous_format).eval()  # type: ignore[call-overload]
    float_model = to_float_tflite(net, size=config.size)
    converted = tflite_predict(float_model, val_set.x[:200])
    expected = predict(net, val_set.x[:200])
    if not np.allclose(converted, expected, atol=1e-3):
        raise RuntimeError(
            f"{name}: the TFLite conversion differs from PyTorch by {np.abs(converted - expected).max()}"
        )
    calibration = train_set.x[np.random.default_rng(seed).permutation(len(train_set.x))[:400]]
    int8_model = to_int8_tflite(net, calibration)
    (out_dir / f"{name}.tflite").write_bytes(int8_model)
    (work / f"{name}.float.tflite").write_bytes(float_model)
    val_float = tflite_predict(float_model, val_set.x)
    val_int8 = tflite_predict(int8_model, val_set.x)
    entry: dict[str, Any] = {
        "name": name,
        "file": f"{name}.tflite",
        "sha256": sha256(int8_model),
        "bytes": len(int8_model),
        "float_bytes": len(float_model),
        "input_size": config.size,
        "input": "grayscale face crop, uint8 0..255, resized (INTER_AREA) from the crop",
        "flip": True,
        "population": population,
        "datasets": datasets or POPULATION_INFO[population],
        "config": config.to_dict(),
        "init": init,
        "macs": macs(config),
        "history": history,
        "val": {"float": _score(val_set.y, val_float), "int8": _score(val_set.y, val_int8)},
        "state": net.state_dict(),
    }
    log.info(
        "member %s: val float %.4f int8 %.4f",
        name,
        entry["val"]["float"]["accuracy"],
        entry["val"]["int8"]["accuracy"],
    )
    return entry


def _load_net(config: Config, state: dict[str, torch.Tensor]) -> ExpressionNet:
    net = ExpressionNet(config)
    net.load_state_dict(state)
    return net


# How strongly each combination fitted to validation log-loss is held to the plain average: the mean
# square of each weight's log-ratio to the geometric mean of its class's weights costs this much of the
# objective-weighted log-loss. "logloss"
# is held only enough to stay finite; "shrunk" trades a little fit for steadiness: the validation
# faces of a small population (JAFFE's 65, in three women) weigh much in the objective, and
# per-class weights fitted freely chase single faces of them.
PENALTIES = {"logloss": 1e-3, "shrunk": 0.1}
METHODS = ("average", "precision", *PENALTIES)
# The combination every other choice (views, members, the objectives' table) is judged with.
SELECTION_METHOD = "shrunk"


def fit_weights(method: str, probs: np.ndarray, y: np.ndarray, sample_weight: np.ndarray) -> np.ndarray:
    """(members, 7) weights from member probabilities (n, members, 7), labels and per-face weights.

    ``method`` is one of ``METHODS``. ``sample_weight`` lets every population count the same,
    whatever its size: LFW's 1,900 neutral and happy validation faces would otherwise outvote the
    rest and favour the members that say "neutral". Each class's weights sum to 1 over the members.
    """
    members = probs.shape[1]
    if method == "average":
        return np.full((members, len(LABELS)), 1.0 / members)
    if method == "precision":
        predicted = probs.argmax(2)
        weights = np.zeros((members, len(LABELS)))
        for m in range(members):
            for c in range(len(LABELS)):
                chosen = predicted[:, m] == c
                share = sample_weight[chosen].sum() / sample_weight.mean()
                hits = sample_weight[chosen & (y == c)].sum() / sample_weight.mean()
                # Laplace smoothing keeps a member that never predicts c from a zero weight.
                weights[m, c] = (hits + 1) / (share + 2)
        return weights / weights.sum(0, keepdims=True)
    if method in PENALTIES:
        penalty = PENALTIES[method]
        target = torch.from_numpy(y)
        p = torch.from_numpy(probs).double()
        sw = torch.from_numpy(sample_weight / sample_weight.sum()).double()
        # Log-weights: all zero is the plain average, which the penalty pulls towards.
        raw = torch.zeros(members, len(LABELS), dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.LBFGS([raw], max_iter=200, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            w = torch.softmax(raw, 0)
            mixed = (p * w).sum(1)
            mixed = mixed / mixed.sum(1, keepdim=True)
            nll = -torch.log(mixed[torch.arange(len(y)), target].clamp_min(1e-9))
            centred = raw - raw.mean(0, keepdim=True)
            loss = (sw * nll).sum() + penalty * (centred**2).mean()
            loss.backward()
            return loss

        optimizer.step(closure)
        return torch.softmax(raw, 0).detach().numpy()
    raise ValueError(method)


def combine(weights: np.ndarray, probs: np.ndarray) -> np.ndarray:
    mixed = (probs * weights).sum(1)
    return mixed / mixed.sum(1, keepdims=True)


def member_outputs(models: dict[str, bytes], entries: list[dict[str, Any]], faces: np.ndarray) -> np.ndarray:
    """(n, members, 7) int8 member probabilities for face crops, through the run-time code path."""
    outputs = []
    for entry in entries:
        size = entry["input_size"]
        resized = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in faces])
        views = tuple(tuple(v) for v in entry.get("views", SINGLE_VIEW))
        outputs.append(tflite_predict(models[entry["file"]], resized, flip=entry["flip"], views=views))  # type: ignore[arg-type]
    return np.stack(outputs, 1)


def _trained_fer_members(paths: list[Path], count: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ``count`` best FER2013 members trained by ``models.train.fer`` (or ``.gpu``), and their search's trials."""
    members = sorted((torch.load(path, weights_only=False) for path in paths), key=lambda m: -m["val_accuracy"])
    trials: list[dict[str, Any]] = []
    for folder in sorted({path.parent for path in paths}):
        record = json.loads((folder / "search.json").read_text())
        trials += [{**t, "init": "scratch"} for t in record["trials"]]
    return members[:count], trials


# How far a shipped member's int8 validation accuracy may move from what the build that trained it
# measured (the crops of a few faces change with the detector) before its carried figures are refused.
CARRIED_TOLERANCE = 0.005


def shipped_names(out: Path) -> list[str]:
    """The members of the ensemble in ``out`` (none where it has no manifest)."""
    return [e["name"] for e in read_manifest(out)["members"]] if (out / MANIFEST).exists() else []


def shipped_member(
    data: dict[str, np.ndarray], out: Path, name: str
) -> tuple[dict[str, Any], bytes, dict[str, Any] | None]:
    """A member of the shipped ensemble in ``out``, as a candidate of this build, and its int8 model.

    Its int8 model is kept as it is; what only its float state could measure (its float scores,
    its history) comes from the ``training.json`` of the build that trained it, and its int8
    validation score is measured again. The faces are cut by the detector of the day, so a few
    crops may differ from that build's; a score more than ``CARRIED_TOLERANCE`` away means other
    faces altogether, where the carried figures would not hold, and the build stops. Returns the
    entry (still under its shipped name and file: ``_place`` gives it this build's), the model and,
    for a FER2013 member, its recipe's record for the card's table of recipes.
    """
    manifest = read_manifest(out)
    record = json.loads((out / "training.json").read_text())
    entry = next(e for e in manifest["members"] if e["name"] == name)
    trained = next(m for m in record["members"] if m["name"] == name)
    model = (out / entry["file"]).read_bytes()
    if sha256(model) != entry["sha256"]:
        raise RuntimeError(f"{name}: {entry['file']} is not the model its manifest names")
    val_set = load_split(data, entry["population"], VAL, entry["input_size"])
    int8 = _score(val_set.y, tflite_predict(model, val_set.x))
    then = trained["val"]["int8"]["accuracy"]
    if abs(int8["accuracy"] - then) > CARRIED_TOLERANCE:
        raise RuntimeError(
            f"{name}: int8 validation accuracy {int8['accuracy']:.4f}, its build measured {then:.4f}:"
            " not the same validation faces"
        )
    candidate = {
        **{k: v for k, v in entry.items() if k != "views"},
        "history": trained["history"],
        "val": {"float": trained["val"]["float"], "int8": int8},
        "public_test_float": trained["public_test_float"],
        "shipped": {"val_int8_then": then},
        "state": None,
    }
    recipe = next((r for r in record["report"].get("fer_recipes", []) if r["recipe"] == entry.get("recipe")), None)
    log.info("shipped member %s: val int8 %.4f, its build measured %.4f", name, int8["accuracy"], then)
    return candidate, model, recipe


def _place(out: Path, candidate: dict[str, Any], model: bytes, name: str) -> dict[str, Any]:
    """A shipped candidate under this build's ``name``, its model written to ``out/NAME.tflite``."""
    (out / f"{name}.tflite").write_bytes(model)
    return {**candidate, "name": name, "file": f"{name}.tflite"}


# The views every member may read a face in, each besides the face as cut (and all mirrored):
# shifts of 1/24 of the side (2 px at 48) and zooms, as training's random crops move a face.
VIEW_SETS: dict[str, list[list[float]]] = {
    "single": [[0.0, 0.0, 1.0]],
    "shifts": [[0.0, 0.0, 1.0], [0.042, 0.0, 1.0], [-0.042, 0.0, 1.0], [0.0, 0.042, 1.0], [0.0, -0.042, 1.0]],
    "zooms": [[0.0, 0.0, 1.0], [0.0, 0.0, 1.08], [0.0, 0.0, 0.92]],
}


def choose_views(
    models: dict[str, bytes],
    entries: list[dict[str, Any]],
    pool: Pool,
    *,
    budget_ms: float,
    run_ms: float,
    single: np.ndarray,
) -> tuple[dict[str, Any], np.ndarray]:
    """Which views of a face the members read, by the combination's cross-validated score on validation faces.

    A set with more views must score ``VIEW_GAIN`` higher than one with fewer: each view is
    another run of every member; and the whole ensemble (``run_ms`` for one view of every
    member, one thread) must stay within ``budget_ms`` a face. ``single`` is the members'
    outputs on the pool's faces with the one view every face has, already computed. Sets the
    members' ``views``; returns the comparison and the members' outputs with the chosen views.
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
            outputs[name] = member_outputs(models, [{**e, "views": views} for e in entries], pool.x)
        scores[name] = pool.cross_validated(outputs[name], list(range(len(entries))))
        log.info("views %s: %.4f", name, scores[name])
    by_cost = sorted(scores, key=lambda n: len(VIEW_SETS[n]))
    chosen = by_cost[0]
    for name in by_cost[1:]:
        if scores[name] >= scores[chosen] + VIEW_GAIN:
            chosen = name
    for entry in entries:
        entry["views"] = VIEW_SETS[chosen]
    comparison = {
        "chosen": chosen,
        "score": scores,
        "sets": {name: VIEW_SETS[name] for name in scores},
        "one_view_ms": run_ms,
        "budget_ms": budget_ms,
        "min_gain": VIEW_GAIN,
    }
    return comparison, outputs[chosen]


def _run_ms(model: bytes, face: np.ndarray, *, size: int, flip: bool, repeat: int = 50) -> float:
    """Median milliseconds of one view of a member (with its mirror image), one thread."""
    member = Member("timed", model, size=size, flip=flip, threads=1)
    member.predict(face)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        member.predict(face)
        times.append((time.perf_counter() - started) * 1000)
    return float(np.median(times))


# What every choice of the build (views, members, combination) is judged by: accuracy on the mix
# of faces the ensemble is judged on, FER2013 faces in the wild of public_test's kind and posed
# faces of new people, in the proportions of issue 11's held-out sets (3,589 and 927 faces),
# estimated on FER2013's and JAFFE's validation splits. LFW's and IMFDB's validation faces are
# scored and reported beside (their members still compete), not fitted to: the card compares this
# objective with every population counting the same.
OBJECTIVES: dict[str, dict[str, float]] = {
    "judged mix": {"fer2013": 3589, "lfw": 0, "jaffe": 927, "imfdb": 0},
    "populations alike": {"fer2013": 1, "lfw": 1, "jaffe": 1, "imfdb": 1},
}
OBJECTIVE = "judged mix"
# A member is run only where it raises the cross-validated objective by this much (0.1 point), and by
# SE_RULE standard errors of the change (``Pool.paired_se``): every member costs about a millisecond
# a face, and the objective's noise is larger than a fixed step. JAFFE's few validation faces of three
# women weigh a fifth of the judged mix, so one face moves it a third of a point, and the standard error
# of the change a member makes is typically most of a point. A one-sided test at one standard error:
# the cheaper set stays unless the larger one reads better by more than the noise of the faces they
# read differently. (It is face by face: JAFFE's faces are of few women, so it still understates the
# noise of meeting new people.)
MIN_GAIN = 0.001
SE_RULE = 1.0
# The population whose validation faces choose the forward selection's first member, the ensemble's
# reader of faces in the wild (``first_member``).
FIRST_READS = "fer2013"
# Each extra view is another run of every member: a set with more views must score this much more.
VIEW_GAIN = 0.002


def _counted(shares: dict[str, float], origin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each population's share (``shares`` scaled to sum to 1), and each face's weight (its share spread)."""
    share = np.array([shares[name] for name in POPULATIONS], dtype=np.float64)
    share /= share.sum()
    return share, share[origin] / np.bincount(origin, minlength=len(POPULATIONS))[origin]


def val_people(data: dict[str, np.ndarray], population: str) -> np.ndarray | None:
    """The person of each of a population's validation faces, or None where not every one is known
    (FER2013 names no one; faces prepared before people were recorded)."""
    people = data.get(f"{population}_identity")
    if people is None:
        return None
    people = people[data[f"{population}_split"] == VAL]
    return None if len(people) == 0 or (people == "").any() else people


def _person_folds(people: np.ndarray | None, count: int, rng: np.random.Generator) -> np.ndarray:
    """Two folds of ``count`` faces: whole people, alternately in a shuffled order, where ``people`` names
    every face's; otherwise face by face at random."""
    if people is None:
        return rng.permutation(count) % 2
    if len(people) != count:
        raise ValueError(f"{len(people)} people for {count} faces")
    names = np.unique(people)
    fold_of = dict(zip(names[rng.permutation(len(names))], np.arange(len(names)) % 2, strict=True))
    return np.array([fold_of[person] for person in people], dtype=np.int64)


@dataclass(frozen=True)
class Pool:
    """The pooled validation faces every choice is made on (none of public_test), and how they count.

    ``share`` is each population's part of the objective (summing to 1), ``weight`` each face's
    (a population's share spread over its faces), ``folds`` the two folds of every cross-validation.
    """

    x: np.ndarray
    y: np.ndarray
    origin: np.ndarray  # index into POPULATIONS
    share: np.ndarray
    weight: np.ndarray
    folds: np.ndarray

    @classmethod
    def of(cls, data: dict[str, np.ndarray], objective: str, *, seed: int) -> Pool:
        """The validation faces of ``data`` (``prepare``'s arrays), counted by ``objective``.

        The folds keep each person whole where the faces' people are known (``NAME_identity``): the
        weights fitted on one fold are judged on people they never saw, as the ensemble will be.
        """
        rng = np.random.default_rng(seed)
        x, y, origin, folds = [], [], [], []
        for index, name in enumerate(POPULATIONS):
            mask = data[f"{name}_split"] == VAL
            x.append(data[f"{name}_x"][mask])
            y.append(data[f"{name}_y"][mask].astype(np.int64))
            origin.append(np.full(mask.sum(), index))
            folds.append(_person_folds(val_people(data, name), int(mask.sum()), rng))
        labels, where = np.concatenate(y), np.concatenate(origin)
        return cls(np.concatenate(x), labels, where, *_counted(OBJECTIVES[objective], where), np.concatenate(folds))

    def with_objective(self, objective: str) -> Pool:
        """The same faces and folds, counted by another objective."""
        return self._counted_by(OBJECTIVES[objective])

    def alone(self, population: str) -> Pool:
        """The same faces and folds, counting ``population``'s alone."""
        return self._counted_by({name: float(name == population) for name in POPULATIONS})

    def _counted_by(self, shares: dict[str, float]) -> Pool:
        return Pool(self.x, self.y, self.origin, *_counted(shares, self.origin), self.folds)

    def per_population(self, probs: np.ndarray) -> dict[str, float]:
        """Accuracy of (n, 7) probabilities on each population's validation faces."""
        return self._accuracies(probs.argmax(1) == self.y)

    def _accuracies(self, hits: np.ndarray) -> dict[str, float]:
        return {name: float(hits[self.origin == i].mean()) for i, name in enumerate(POPULATIONS)}

    def score(self, probs: np.ndarray) -> float:
        """The objective: the populations' accuracies, weighted by their shares."""
        return float(self.share @ np.array(list(self.per_population(probs).values())))

    def held_out(self, method: str, probs: np.ndarray) -> np.ndarray:
        """(n, 7): each face's combined probabilities, with weights fitted on the other fold."""
        combined = np.zeros((len(self.y), len(LABELS)))
        for fold in (0, 1):
            fit_on = self.folds != fold
            w = fit_weights(method, probs[fit_on], self.y[fit_on], self.weight[fit_on])
            combined[self.folds == fold] = combine(w, probs[self.folds == fold])
        return combined

    def hits(self, probs: np.ndarray, members: list[int]) -> np.ndarray:
        """Whether the cross-validated ``SELECTION_METHOD`` combination of ``members`` reads each face right."""
        hits: np.ndarray = self.held_out(SELECTION_METHOD, probs[:, members]).argmax(1) == self.y
        return hits

    def paired_se(self, probs: np.ndarray, before: list[int], after: list[int]) -> float:
        """The standard error of the objective's change from members ``before`` to ``after``, were there none.

        Paired, face by face: the two sets read most faces alike, and only the faces they read
        differently make noise. A counted population's accuracy changes by the mean of its faces'
        changes (-1, 0 or 1), whose variance with no real change is the share of its faces read
        differently over their count (McNemar's); the objective weighs it by the share squared.
        """
        change = self.hits(probs, after).astype(np.float64) - self.hits(probs, before)
        variance = 0.0
        for index, share in enumerate(self.share):
            faces = change[self.origin == index]
            if share > 0 and len(faces):
                variance += share**2 * float(np.mean(faces**2)) / len(faces)
        return float(np.sqrt(variance))

    def needed_gain(self, probs: np.ndarray, before: list[int], after: list[int]) -> float:
        """How much more ``after`` must score than ``before`` to be worth its extra member."""
        return max(MIN_GAIN, SE_RULE * self.paired_se(probs, before, after))

    def cross_validated(self, probs: np.ndarray, members: list[int]) -> float:
        """The objective's score of the ``SELECTION_METHOD`` combination of ``members``, two-fold."""
        return self.weighted(self.judged_readings(probs, members))

    def judged_readings(self, probs: np.ndarray, members: list[int]) -> dict[str, float]:
        """What ``cross_validated`` scores, by population: the accuracy on each one the objective counts."""
        readings = self._accuracies(self.hits(probs, members))
        return {name: readings[name] for name, share in zip(POPULATIONS, self.share, strict=True) if share > 0}

    def weighted(self, readings: dict[str, float]) -> float:
        """The objective from ``judged_readings``: each population's accuracy weighted by its share."""
        return float(sum(self.share[POPULATIONS.index(name)] * value for name, value in readings.items()))


def prune_population_members(
    probs: np.ndarray, pool: Pool, populations: list[str], *, members: list[int] | None = None
) -> tuple[list[int], list[dict[str, Any]]]:
    """The members worth their cost: a LFW, JAFFE or IMFDB member stays only where it earns its weight.

    Each in turn is left out; when the cross-validated score of the combination without it is
    within ``Pool.needed_gain`` of the score with it, it goes (one member less to run for the same
    accuracy, within the noise). FER2013 members always stay. ``members`` are the ones in (by default all).
    Validation splits only.
    """
    kept = list(range(len(populations))) if members is None else sorted(members)
    steps: list[dict[str, Any]] = []
    with_it = pool.cross_validated(probs, kept)
    for index in list(kept):
        population = populations[index]
        if population == "fer2013":
            continue
        without = [k for k in kept if k != index]
        without_it = pool.cross_validated(probs, without)
        needed = pool.needed_gain(probs, without, kept)
        dropped = without_it > with_it - needed
        steps.append({"member": index, "with": with_it, "without": without_it, "needed": needed, "kept": not dropped})
        log.info("member %d (%s): %.4f with it, %.4f without", index, population, with_it, without_it)
        if dropped:
            kept, with_it = without, without_it
    return kept, steps


def first_member(
    probs: np.ndarray, pool: Pool, candidates: list[int], scores: dict[int, float]
) -> tuple[int, list[int]]:
    """The forward selection's first member, and the candidates that read faces in the wild alike.

    The first is the ensemble's reader of faces in the wild: the one that reads ``FIRST_READS``'s
    validation faces best, or, among those that read them within the gain needed of it (within the
    noise), the one the objective ``scores`` best. The judged mix alone would let JAFFE's few faces
    pick a member that reads the wild far worse; FER2013's alone would pick on a face or two.
    """
    if pool.share[POPULATIONS.index(FIRST_READS)] == 0:
        raise ValueError(f"the objective does not count {FIRST_READS}, whose faces choose the first member")
    wild = pool.alone(FIRST_READS)
    reading = {c: wild.cross_validated(probs, [c]) for c in candidates}
    best = max(candidates, key=lambda c: reading[c])
    alike = [c for c in candidates if c == best or reading[c] > reading[best] - wild.needed_gain(probs, [c], [best])]
    return max(alike, key=lambda c: scores[c]), alike


def greedy_fer_members(
    probs: np.ndarray,
    pool: Pool,
    populations: list[str],
    *,
    most: int,
    costs: list[float] | None = None,
    budget_ms: float = float("inf"),
    chosen: list[int] | None = None,
    fixed: list[int] | None = None,
) -> tuple[list[int], list[dict[str, Any]]]:
    """Which FER2013 members to keep: forward selection by the combination's cross-validated score.

    The other populations' members are returned too, to be pruned after (``prune_population_members``),
    and are left out of the sets this selection scores: a FER2013 member is judged by how it reads, not
    by how the weights fitted on one fold mix it with members that may then go. The first is the reader
    of faces in the wild (``first_member``); each step after adds the
    FER2013 member that raises the score of the cross-validated ``SELECTION_METHOD`` combination most,
    and the selection stops when the best of them raises it by less than ``Pool.needed_gain``, ``most``
    are in, or no other fits ``budget_ms`` a face with the members in (``costs``: each member's
    milliseconds a face).
    Validation splits only. ``chosen`` are FER2013 members already in (an earlier selection's), ``fixed``
    the other populations' members the budget counts (by default all of them).

    Each step records the member added (None for the last step, where none raised the score enough,
    or none fit the budget: then ``fixed`` says which other members it counted),
    the score then, the score each member tried would have given (``tried``), and that score split by
    the populations the objective counts (``readings``): a member may read one kind of face better and
    another worse. The first step records the candidates that read faces in the wild alike (``alike``),
    each later one the gain the best member tried needed (``needed``); a step the budget stopped, neither.
    """
    fixed = [i for i, p in enumerate(populations) if p != "fer2013"] if fixed is None else list(fixed)
    chosen = list(chosen or [])
    pool_left = [i for i, p in enumerate(populations) if p == "fer2013" and i not in chosen]
    costs = costs or [0.0] * len(populations)
    steps: list[dict[str, Any]] = []
    best = pool.cross_validated(probs, sorted(chosen)) if chosen else -1.0
    while pool_left and len(chosen) < most:
        spent = sum(costs[i] for i in [*chosen, *fixed])
        # The first member is always taken: an ensemble needs one reader of faces in the wild.
        fits = [c for c in pool_left if not chosen or spent + costs[c] <= budget_ms]
        if not fits:
            steps.append({"added": None, "score": best, "tried": {}, "readings": {}, "fixed": fixed})
            break
        readings = {c: pool.judged_readings(probs, sorted([*chosen, c])) for c in fits}
        scores = {c: pool.weighted(readings[c]) for c in fits}
        if chosen:
            pick = max(scores, key=lambda c: scores[c])
            needed = pool.needed_gain(probs, sorted(chosen), sorted([*chosen, pick]))
            why: dict[str, Any] = {"needed": needed}
            if scores[pick] < best + needed:
                # Recorded too: what each member left would have scored, so the card shows why none joined.
                steps.append({"added": None, "score": best, "tried": scores, "readings": readings, **why})
                break
        else:
            pick, alike = first_member(probs, pool, fits, scores)
            why = {"alike": alike}
        chosen.append(pick)
        pool_left.remove(pick)
        best = scores[pick]
        steps.append({"added": pick, "score": best, "tried": scores, "readings": readings, **why})
        log.info("greedy selection: member %d in, %.4f", pick, best)
    return sorted(chosen) + fixed, steps


def select_within_budget(
    probs: np.ndarray, pool: Pool, populations: list[str], *, most: int, costs: list[float], budget_ms: float
) -> tuple[list[int], list[dict[str, Any]], list[dict[str, Any]]]:
    """FER2013 members by forward selection, then the others pruned; again while pruning frees the budget.

    The forward selection counts every other population's member in the budget, and pruning may then
    drop some: where the budget is what stopped the selection, it goes on with the members kept, and
    pruning judges the larger set again. Returns the members kept (indices into ``populations``), the
    selection's steps and the pruning's (``member`` an index into ``populations``), every pass's in order.
    Validation splits only.
    """
    chosen: list[int] = []
    fixed = [i for i, p in enumerate(populations) if p != "fer2013"]
    steps: list[dict[str, Any]] = []
    pruning: list[dict[str, Any]] = []
    while True:
        keep, new_steps = greedy_fer_members(
            probs, pool, populations, most=most, costs=costs, budget_ms=budget_ms, chosen=chosen, fixed=fixed
        )
        steps += new_steps
        if pruning and [k for k in keep if populations[k] == "fer2013"] == sorted(chosen):
            # A later pass that added no member: pruning would judge the same set again.
            return keep, steps, pruning
        kept, new_pruning = prune_population_members(probs, pool, populations, members=keep)
        pruning += new_pruning
        chosen = [k for k in kept if populations[k] == "fer2013"]
        freed = [i for i in fixed if i not in kept]
        fixed = [i for i in fixed if i in kept]
        if not (new_steps and "fixed" in new_steps[-1]) or not freed:
            return sorted(chosen) + fixed, steps, pruning
        log.info("pruning freed %.2f ms a face: the selection goes on", sum(costs[i] for i in freed))


# --- the build's steps, in order ------------------------------------------------------------------------


def train_members(
    args: argparse.Namespace, data: dict[str, np.ndarray], record: dict[str, Any]
) -> list[dict[str, Any]]:
    """Every member, exported to int8: the FER2013 members (trained ones from ``--states``, or searched
    and trained here), then one per other population (searched, trained, or ``--keep``-ed)."""
    previous = {e["name"]: e for e in record.get("members", [])}

    def export(name: str, population: str, config: Config, state: dict[str, Any], **kw: Any) -> dict[str, Any]:
        net = _load_net(config, state)
        return export_member(name, population, data, net, config, out_dir=args.out, work=args.work, **kw)

    entries: list[dict[str, Any]] = []
    fer_init: dict[str, Any] | None = None
    plan = [(p, p, 0) for p in POPULATIONS]
    # Read before any export: the new members take the shipped ones' file names.
    shipped = [shipped_member(data, args.out, name) for name in args.shipped]
    shipped_others = {c["population"]: (c, model) for c, model, _ in shipped if c["population"] != "fer2013"}
    if args.states:
        fer_members, trials = _trained_fer_members(args.states, len(args.states) if args.greedy else args.fer_members)
        record["search"]["fer2013"] = trials
        # Every trained recipe, kept or not: the card compares them (what mixup, or more data, paid).
        record["fer_recipes"] = [
            {
                "recipe": m["name"],
                "data": m.get("data", "fer2013"),
                "teachers": m.get("teachers", []),
                "config": m["config"],
                "history": m["history"],
                "val_accuracy": m["val_accuracy"],
            }
            for m in fer_members
        ]
        names = ["fer2013"] + [f"fer2013_{rank + 1}" for rank in range(1, len(fer_members))]
        for name, member in zip(names, fer_members, strict=True):
            entries.append(
                export(
                    name,
                    "fer2013",
                    Config(**member["config"]),
                    member["state"],
                    history=member["history"],
                    init="scratch",
                    seed=0,
                    datasets=FER_WITH_OTHERS.get(member.get("data", "fer2013")),
                )
            )
            entries[-1]["recipe"] = member["name"]  # models.train.fer's recipe (fer_a, ...) or the GPU run's
        fer_init = {"state": fer_members[0]["state"], "config": Config(**fer_members[0]["config"])}
        plan = plan[1:]
        for candidate, model, recipe in shipped:
            if candidate["population"] == "fer2013":
                entries.append(_place(args.out, candidate, model, f"shipped_{candidate['name']}"))
                if recipe:
                    record["fer_recipes"].append(recipe)
    else:
        plan += [(f"fer2013_{rank + 1}", "fer2013", rank) for rank in range(1, args.extra_fer + 1)]
    for name, population, rank in plan:
        if population in shipped_others and rank == 0:
            entries.append(_place(args.out, *shipped_others[population], name))
            continue
        if name in args.keep:
            old = previous[name]
            state = torch.load(args.work / f"{name}.pt", weights_only=False)
            entries.append(
                export(
                    name,
                    population,
                    Config(**old["config"]),
                    state,
                    history=old["history"],
                    init=old["init"],
                    seed=args.seed + rank,
                )
            )
            continue
        big = population in ("fer2013", "lfw")
        if population not in record["search"]:
            record["search"][population] = search(
                population,
                data,
                trials=args.trials,
                epochs=args.search_epochs if big else args.small_epochs // 2,
                share=0.5 if big else 1.0,
                init=fer_init,
                seed=args.seed,
            )
            (args.work / "build.json").write_text(json.dumps(record, indent=1))
        ranked = sorted(record["search"][population], key=lambda r: -r["val_accuracy"])
        entry = build_member(
            name,
            population,
            data,
            ranked[rank % len(ranked)],
            epochs=args.epochs if big else args.small_epochs,
            init=fer_init,
            out_dir=args.out,
            work=args.work,
            seed=args.seed + rank,
        )
        if name == "fer2013":
            fer_init = {"state": entry["state"], "config": Config(**entry["config"])}
        entries.append(entry)
    return entries


def select_members(
    args: argparse.Namespace,
    entries: list[dict[str, Any]],
    models: dict[str, bytes],
    probs: np.ndarray,
    pool: Pool,
    record: dict[str, Any],
    *,
    costs: list[float],
) -> tuple[list[dict[str, Any]], np.ndarray, dict[str, bytes]]:
    """The members that earn their cost: FER2013 ones by forward selection (``--greedy``), the others by pruning.

    ``costs`` are the members' milliseconds a face (one view with its mirror image): the forward
    selection adds none past ``--budget-ms``, and goes on where pruning frees time (``select_within_budget``).

    Renames the kept FER2013 members fer2013, fer2013_2, ... and returns them, their outputs on the
    pool and their model bytes.
    """
    # A build without --greedy chooses no FER2013 member: an earlier build's selection would be shown as its.
    record["greedy"], record["candidates"] = [], []
    populations = [e["population"] for e in entries]
    names = [e["name"] for e in entries]
    if not args.greedy:
        keep, pruning = prune_population_members(probs, pool, populations)
    else:
        keep, steps, pruning = select_within_budget(
            probs, pool, populations, most=args.greedy, costs=costs, budget_ms=args.budget_ms
        )
        recipe = [e.get("recipe", "?") for e in entries]
        record["greedy"] = [
            {
                "added": None if step["added"] is None else recipe[step["added"]],
                "score": step["score"],
                **({"needed": step["needed"]} if "needed" in step else {}),
                **({"alike": [recipe[c] for c in step["alike"]]} if "alike" in step else {}),
                "tried": {recipe[c]: score for c, score in step["tried"].items()},
                "readings": {recipe[c]: reading for c, reading in step["readings"].items()},
                **({"over_budget_with": [names[i] for i in step["fixed"]]} if "fixed" in step else {}),
            }
            for step in steps
        ]
        record["candidates"] = [r for r, e in zip(recipe, entries, strict=True) if e["population"] == "fer2013"]
    record["pruning"] = [{**step, "member": names[step["member"]]} for step in pruning]
    entries, probs = [entries[i] for i in keep], probs[:, keep]
    if args.greedy:
        for stale in args.out.glob("fer2013*.tflite"):
            stale.unlink()
        renamed: dict[str, bytes] = {}
        rank = 0
        for entry in entries:
            model_bytes = models[entry["file"]]
            if entry["population"] == "fer2013":
                rank += 1
                entry["name"] = "fer2013" if rank == 1 else f"fer2013_{rank}"
                entry["file"] = f"{entry['name']}.tflite"
                (args.out / entry["file"]).write_bytes(model_bytes)
            renamed[entry["file"]] = model_bytes
        models = renamed
    return entries, probs, {e["file"]: models[e["file"]] for e in entries}


def choose_combination(probs: np.ndarray, pool: Pool) -> tuple[str, np.ndarray, dict[str, Any]]:
    """Average, per-class precision, log-loss or shrunk log-loss weights: the best cross-validated score wins.

    Returns the method, its weights fitted on all the pool, and the comparison, which also says
    what each population's faces would read under every objective (the card's table).
    """
    comparison: dict[str, Any] = {}
    for method in METHODS:
        held_out = pool.held_out(method, probs)
        comparison[method] = _score(pool.y, held_out)
        comparison[method]["score"] = pool.score(held_out)
        comparison[method]["populations"] = pool.per_population(held_out)
        log.info("combination %s: cross-validated score %.4f", method, comparison[method]["score"])
    method = max(comparison, key=lambda m: (comparison[m]["score"], -comparison[m]["log_loss"]))
    objectives = {}
    for objective in OBJECTIVES:
        other = pool.with_objective(objective)
        held_out = other.held_out(SELECTION_METHOD, probs)
        objectives[objective] = {"score": other.score(held_out), "populations": other.per_population(held_out)}
    return method, fit_weights(method, probs, pool.y, pool.weight), {"methods": comparison, "objectives": objectives}


def public_test_report(
    data: dict[str, np.ndarray], entries: list[dict[str, Any]], models: dict[str, bytes], weights: np.ndarray
) -> dict[str, Any]:
    """The ensemble and each member (int8) on FER2013's public test, after every choice was made.

    Adds each member's float score (its views and mirror images read as the int8 member reads
    them), for the card's float vs int8 column.
    """
    faces = data["fer2013_x"][data["fer2013_split"] == TEST]
    y = data["fer2013_y"][data["fer2013_split"] == TEST].astype(np.int64)
    probs = member_outputs(models, entries, faces)
    for entry in entries:
        if entry.get("state") is None:  # shipped: its float score is the one its build measured
            continue
        size = entry["input_size"]
        net = _load_net(Config(**entry["config"]), entry["state"])
        resized = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in faces])
        runs = []
        for view in entry.get("views", SINGLE_VIEW):
            seen = np.stack([view_of(f, tuple(view)) for f in resized])  # type: ignore[arg-type]
            runs.append(predict(net, seen))
            if entry["flip"]:
                runs.append(predict(net, np.ascontiguousarray(seen[:, :, ::-1])))
        entry["public_test_float"] = _score(y, np.mean(runs, axis=0))
    return {
        "ensemble": _score(y, combine(weights, probs)),
        "members": {e["name"]: _score(y, probs[:, i]) for i, e in enumerate(entries)},
    }


def write_outputs(
    args: argparse.Namespace,
    data: dict[str, np.ndarray],
    entries: list[dict[str, Any]],
    *,
    weights: np.ndarray,
    method: str,
    report: dict[str, Any],
    record: dict[str, Any],
) -> None:
    """The manifest, the members' weights for a later ``--keep``, the build record and training.json.

    Member files of earlier builds, and members left out, go: the folder holds what the manifest names.
    """
    for entry in entries:
        state = entry.pop("state")
        if state is not None:
            torch.save(state, args.work / f"{entry['name']}.pt")
    manifest = {
        "labels": list(LABELS),
        # The crop prepare cut the faces with: its side is the arrays' own.
        "crop": {
            "size": int(data["fer2013_x"].shape[1]),
            "scale": CROP_SCALE,
            "shift": CROP_SHIFT,
            "color": "grayscale",
        },
        "members": [
            {k: v for k, v in e.items() if k not in ("history", "val", "public_test_float", "shipped")} for e in entries
        ],
        "weights": weights.round(5).tolist(),
        "combination": method,
        "metrics": {
            "public_test_accuracy": report["public_test"]["ensemble"]["accuracy"],
            "public_test_macro_recall": report["public_test"]["ensemble"]["macro_recall"],
        },
    }
    (args.out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    for stale in set(args.out.glob("*.tflite")) - {args.out / e["file"] for e in entries}:
        stale.unlink()
    record["members"] = entries
    record["report"] = report
    (args.work / "build.json").write_text(json.dumps(record, indent=1))
    (args.out / "training.json").write_text(
        json.dumps({"search": record["search"], "members": entries, "report": report}, indent=1) + "\n"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("models/work/faces.npz"))
    parser.add_argument("--out", type=Path, default=Path("models"))
    parser.add_argument("--work", type=Path, default=Path("models/work"))
    parser.add_argument("--trials", type=int, default=5, help="search trials per population")
    parser.add_argument("--search-epochs", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=40, help="epochs of the chosen FER2013 and LFW members")
    parser.add_argument("--small-epochs", type=int, default=60, help="epochs of the JAFFE and IMFDB members")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--extra-fer", type=int, default=0, help="more FER2013 members, from the next-best search trials, other seeds"
    )
    parser.add_argument(
        "--states",
        type=Path,
        nargs="*",
        default=[],
        help="FER2013 members trained by models.train.fer (NAME.pt) or on a GPU (models.train.gpu's fer_N.pt):"
        " replace the FER2013 search",
    )
    parser.add_argument("--fer-members", type=int, default=4, help="how many of --states to keep, best first")
    parser.add_argument(
        "--greedy",
        type=int,
        default=0,
        help="with --states: export them all, then keep at most this many by forward selection on validation",
    )
    parser.add_argument(
        "--keep",
        nargs="*",
        default=[],
        help="members already trained (models/work/NAME.pt and their build.json entry) to export again, not retrain",
    )
    parser.add_argument(
        "--shipped",
        nargs="*",
        default=[],
        help="members of the ensemble in --out (by name) to keep as candidates without retraining: FER2013 ones"
        " join --states in the selection (needs --greedy), another population's replaces its search",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--budget-ms", type=float, default=8.0, help="the whole ensemble's time a face, one thread, for its views"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.shipped and not (args.states and args.greedy):
        print("error: --shipped needs --states and --greedy (the selection renames what it keeps)", file=sys.stderr)
        return 2
    if unknown := sorted(set(args.shipped) - set(shipped_names(args.out))):
        print(f"error: --shipped {' '.join(unknown)}: not a member of {args.out / MANIFEST}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    data = dict(np.load(args.data))
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    record_path = args.work / "build.json"
    record: dict[str, Any] = json.loads(record_path.read_text()) if record_path.exists() else {}
    record.setdefault("search", {})

    entries = train_members(args, data, record)
    models = {e["file"]: (args.out / e["file"]).read_bytes() for e in entries}
    pool = Pool.of(data, OBJECTIVE, seed=args.seed)
    # Members are chosen on the one view every face has; the extra views, for the members kept,
    # where their cost fits the budget (chosen first, they would be priced for every candidate).
    single = member_outputs(models, [{**e, "views": VIEW_SETS["single"]} for e in entries], pool.x)
    # Timed once, by model: the selection renames the files it keeps.
    ms = {e["sha256"]: _run_ms(models[e["file"]], pool.x[0], size=e["input_size"], flip=e["flip"]) for e in entries}
    costs = [ms[e["sha256"]] for e in entries]
    entries, single, models = select_members(args, entries, models, single, pool, record, costs=costs)
    run_ms = sum(ms[e["sha256"]] for e in entries)
    record["views"], probs = choose_views(models, entries, pool, budget_ms=args.budget_ms, run_ms=run_ms, single=single)
    method, weights, comparison = choose_combination(probs, pool)
    report = {
        "public_test": public_test_report(data, entries, models, weights),
        "objective": {"name": OBJECTIVE, "shares": dict(zip(POPULATIONS, pool.share.tolist(), strict=True))},
        "people_folds": [name for name in POPULATIONS if val_people(data, name) is not None],
        "combination": {
            "chosen": method,
            "cross_validated": comparison["methods"],
            "selection_method": SELECTION_METHOD,
            "penalties": PENALTIES,
        },
        "objectives": comparison["objectives"],
        "fer_recipes": record.get("fer_recipes", []),
        "greedy": record.get("greedy", []),
        "candidates": record.get("candidates", []),
        "pruning": record["pruning"],
        "min_gain": MIN_GAIN,
        "se_rule": SE_RULE,
        "first_reads": FIRST_READS,
        "views": record["views"],
    }
    write_outputs(args, data, entries, weights=weights, method=method, report=report, record=record)
    log.info("ensemble (%s) on public_test: %.4f", method, report["public_test"]["ensemble"]["accuracy"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
