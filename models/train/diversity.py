"""How alike the FER2013 members err: what an average of two can gain, on FER2013's validation faces.

    python -m models.train.diversity --data models/work/faces.npz --states models/work/fer/fer_y.pt

Every member reads each validation face and its mirror image, as at run time: the shipped
int8 members (``--models``, those of the manifest that learnt FER2013) and any float states
(``NAME.pt``, as ``models.train.fer`` writes them). For each pair it prints how often the two
disagree, how often both are wrong, and, on the faces where they disagree, how often each
and their plain average is right; then what the average reads against the better alone.
An average lifts a member only where the other is right on what it gets wrong, and where
its own confidence is low; members that err alike gain nothing from being combined.
Only FER2013's validation split is read; public_test is never used.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from memegen.settings import MODELS_DIR
from memegen.vision.manifest import Manifest
from models.train.export import tflite_predict
from models.train.train import VAL, averaged_reading, load_split


@dataclass(frozen=True)
class Pair:
    """Two members' errors on the same faces."""

    first: str
    second: str
    disagree: float  # share of the faces they label differently
    both_wrong: float  # share of the faces neither labels right
    first_on_disagreements: float  # accuracy of the first on the faces they disagree on
    second_on_disagreements: float
    average_on_disagreements: float  # accuracy of their plain average there
    average: float  # accuracy of the plain average on every face
    gain: float  # the average's accuracy less the better member's


def readings(data: dict[str, np.ndarray], *, models: Path | None, states: list[Path]) -> dict[str, np.ndarray]:
    """Each member's probabilities (face and mirror image averaged) for FER2013's validation faces."""
    out: dict[str, np.ndarray] = {}
    if models is not None:
        for entry in Manifest.read(models).members:
            if entry.population != "fer2013":
                continue
            val = load_split(data, "fer2013", VAL, entry.input_size)
            name = entry.recipe or entry.name
            out[name] = tflite_predict((models / entry.file).read_bytes(), val.x, flip=entry.flip)
    if states:
        faces = load_split(data, "fer2013", VAL, 48).x  # each state reads them at its own side
        for path in states:
            member = torch.load(path, weights_only=False)
            out[member.get("name", path.stem)] = averaged_reading([member], faces)
    return out


def pairs(probabilities: dict[str, np.ndarray], labels: np.ndarray) -> list[Pair]:
    """Every pair of members, as ``Pair``."""

    def on(predicted: np.ndarray, where: np.ndarray) -> float:
        return float((predicted == labels)[where].mean()) if where.any() else 0.0

    everywhere = np.ones(len(labels), dtype=bool)
    rows = []
    for first, second in itertools.combinations(probabilities, 2):
        a, b = probabilities[first], probabilities[second]
        pa, pb, pm = a.argmax(1), b.argmax(1), (a + b).argmax(1)
        apart = pa != pb
        average = on(pm, everywhere)
        rows.append(
            Pair(
                first,
                second,
                disagree=float(apart.mean()),
                both_wrong=float(((pa != labels) & (pb != labels)).mean()),
                first_on_disagreements=on(pa, apart),
                second_on_disagreements=on(pb, apart),
                average_on_disagreements=on(pm, apart),
                average=average,
                gain=average - max(on(pa, everywhere), on(pb, everywhere)),
            )
        )
    return rows


def table(probabilities: dict[str, np.ndarray], labels: np.ndarray, rows: list[Pair]) -> list[str]:
    """The members and the pairs as Markdown."""
    lines = ["| member | fer2013 val |", "|---|---|"]
    lines += [f"| {name} | {100 * float((p.argmax(1) == labels).mean()):.1f}% |" for name, p in probabilities.items()]
    lines += [
        "",
        "| pair | disagree | both wrong | first right where they disagree | second | average"
        " | average, every face | over the better |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.first} + {r.second} | {100 * r.disagree:.1f}% | {100 * r.both_wrong:.1f}%"
        f" | {100 * r.first_on_disagreements:.1f}% | {100 * r.second_on_disagreements:.1f}%"
        f" | {100 * r.average_on_disagreements:.1f}% | {100 * r.average:.1f}% | {100 * r.gain:+.1f} |"
        for r in rows
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("models/work/faces.npz"))
    parser.add_argument("--models", type=Path, default=MODELS_DIR, help="a manifest's folder; its FER2013 members")
    parser.add_argument("--no-models", action="store_true", help="only the --states")
    parser.add_argument("--states", type=Path, nargs="*", default=[], help="float states (NAME.pt)")
    parser.add_argument("--json", action="store_true", help="the pairs as JSON instead of tables")
    args = parser.parse_args(argv)
    missing = [p for p in (args.data, *args.states) if not p.exists()]
    if missing:
        print(f"error: {missing[0]}: no such file", file=sys.stderr)
        return 2
    data = dict(np.load(args.data))
    probabilities = readings(data, models=None if args.no_models else args.models, states=args.states)
    if len(probabilities) < 2:
        print("error: fewer than two members to compare", file=sys.stderr)
        return 2
    labels = data["fer2013_y"][data["fer2013_split"] == VAL].astype(np.int64)
    rows = pairs(probabilities, labels)
    print(
        json.dumps([asdict(r) for r in rows], indent=1) if args.json else "\n".join(table(probabilities, labels, rows))
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
