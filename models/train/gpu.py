"""Train large FER2013 teachers and their small students on a GPU, in one call, for ``build --states``.

A CPU affords students of teachers their own size; a GPU affords teachers of hundreds of
millions of MACs, trained long, and students distilled from them. Two steps:

    # here: pack the training faces (lossless WebP, small enough to travel with the code)
    python -m models.train.gpu pack --data models/work/faces.npz --out models/work/gpu/faces.npz
    # on the GPU machine (needs only torch, numpy, opencv; the pack travels with the checkout,
    # both within the 64 MiB a call carries): teachers, then students
    PYTHONPATH=.:shared python -m models.train.gpu distil --data models/work/gpu/faces.npz --out OUT --budget-s 480

``distil`` trains every teacher (``TEACHERS``) at once, several processes sharing the
GPU (small networks leave one mostly idle), averages their reading of FER2013's training
faces (face and mirror image), then trains every student (``STUDENTS``) at once on those
readings blended with the labels. A probe epoch of each sizes the epochs to fit
``--budget-s``. It writes one state file per student (``OUT/NAME.pt``: config, weights,
history, teachers), the teachers' (``OUT/teachers/NAME.pt``), their reading
(``OUT/teachers.npy``) and ``OUT/search.json``; ``build --states OUT/*.pt`` quantizes the
students and combines them with the CPU's recipes.
Only FER2013's validation split judges an epoch; public_test is not packed.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from models.train.fer import BASE, OTHERS
from models.train.net import Config, macs
from models.train.train import TRAIN, VAL, Split, at_side, averaged_reading, load_split, train

log = logging.getLogger("gpu")
SIZE = 48
# The parts packed: FER2013's train and validation faces, and the posed (JAFFE) and film (IMFDB)
# training people, whom the "posed" recipes add. LFW's 10,765 training faces would take the pack past
# what travels with the code (64 MiB); LFW has a member of its own.
PARTS = {
    "fer_train": ("fer2013", TRAIN),
    "fer_val": ("fer2013", VAL),
    "jaffe": ("jaffe", TRAIN),
    "imfdb": ("imfdb", TRAIN),
}
MAX_PACK_BYTES = 60 * 2**20


@dataclass(frozen=True)
class GpuRecipe:
    """One network of the run: configuration, faces ("fer2013"; "posed": with JAFFE's and IMFDB's), seed."""

    name: str
    config: Config
    data: str
    seed: int
    student: bool = False


_WIDE = replace(BASE, width=64, dropout=0.4)  # twice the students' width: about 4x their MACs
_WIDER = replace(BASE, width=96, dropout=0.5)  # about 9x
TEACHERS = (
    GpuRecipe("gpu_t1", _WIDE, "fer2013", seed=101),
    GpuRecipe("gpu_t2", replace(_WIDE, mixup=0.2), "fer2013", seed=102),
    GpuRecipe("gpu_t3", _WIDE, "posed", seed=103),
    GpuRecipe("gpu_t4", _WIDER, "fer2013", seed=104),
    GpuRecipe("gpu_t5", replace(_WIDER, mixup=0.2), "posed", seed=105),
)
_STUDENT = replace(BASE, distill=0.7)  # the CPU members' network (56 M MACs)
STUDENTS = (
    GpuRecipe("gpu_s1", _STUDENT, "fer2013", seed=201, student=True),
    GpuRecipe("gpu_s2", _STUDENT, "posed", seed=202, student=True),
    GpuRecipe("gpu_s3", replace(_STUDENT, size=40), "posed", seed=203, student=True),
    GpuRecipe("gpu_s4", replace(_STUDENT, mixup=0.2), "fer2013", seed=204, student=True),
)


def pack(data_path: Path, out: Path, *, limit: int = 0) -> int:
    """The faces ``distil`` trains on, each a lossless WebP, in one uncompressed ``.npz``.

    ``limit`` keeps that many faces of each part (smoke runs). Returns the file's size; refuses
    (ValueError) a pack too large to travel with the code.
    """
    data = dict(np.load(data_path))
    arrays: dict[str, np.ndarray] = {}
    for part, (population, split) in PARTS.items():
        faces = load_split(data, population, split, SIZE)
        # Faces are in label order: a limited pack takes them evenly spaced, every label its share.
        keep = np.linspace(0, len(faces.y) - 1, min(limit, len(faces.y))).astype(int) if limit else slice(None)
        x, y = faces.x[keep], faces.y[keep]
        blobs = [cv2.imencode(".webp", face, [cv2.IMWRITE_WEBP_QUALITY, 101])[1].ravel() for face in x]
        arrays[f"{part}_webp"] = np.concatenate(blobs) if blobs else np.zeros(0, np.uint8)
        arrays[f"{part}_ends"] = np.cumsum([len(b) for b in blobs], dtype=np.int64)
        arrays[f"{part}_y"] = y.astype(np.int64)
        if not np.array_equal(_decoded(arrays, part), x):
            raise ValueError(f"{part}: the WebP round trip changed the faces")
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **arrays)  # type: ignore[arg-type]
    size = out.stat().st_size
    if size > MAX_PACK_BYTES:
        out.unlink()
        raise ValueError(f"the pack would be {size / 2**20:.0f} MiB, more than travels with the code")
    counts = ", ".join(f"{len(arrays[p + '_y'])} {p}" for p in PARTS)
    log.info("packed %s into %s (%.1f MiB)", counts, out, size / 2**20)
    return size


def _decoded(arrays: dict[str, np.ndarray], part: str) -> np.ndarray:
    blob, ends = arrays[f"{part}_webp"], arrays[f"{part}_ends"]
    starts = np.concatenate([[0], ends]).astype(np.int64)[:-1]
    faces = [cv2.imdecode(blob[s:e], cv2.IMREAD_GRAYSCALE) for s, e in zip(starts, ends, strict=True)]
    if any(face is None for face in faces):
        raise ValueError(f"{part}: a packed face does not decode")
    return np.stack(faces) if faces else np.zeros((0, SIZE, SIZE), np.uint8)  # type: ignore[arg-type]


def load_packed(path: Path) -> dict[str, Split]:
    """Every packed part as faces and labels."""
    arrays = dict(np.load(path))
    return {part: Split(_decoded(arrays, part), arrays[f"{part}_y"]) for part in PARTS}


def training_faces(parts: dict[str, Split], recipe: GpuRecipe, soft: np.ndarray | None) -> Split:
    """A recipe's faces at its input side; a student's FER2013 faces carry the teachers' reading."""
    names = ["fer_train", *OTHERS[recipe.data]]
    x = at_side(np.concatenate([parts[n].x for n in names]), recipe.config.size)
    y = np.concatenate([parts[n].y for n in names])
    if soft is None:
        return Split(x, y)
    others = np.eye(soft.shape[1], dtype=np.float32)[y[len(soft) :]]
    return Split(x, y, np.concatenate([soft, others]))


_parts: dict[str, Split] = {}


def _init(data_path: str, device: str) -> None:
    logging.basicConfig(level=logging.WARNING)
    torch.backends.cudnn.benchmark = device == "cuda"
    if device == "cpu":
        torch.set_num_threads(1)  # the workers share the cores
    _parts.update(load_packed(Path(data_path)))


def _job(recipe: GpuRecipe, epochs: int, soft_path: str, device: str, batch: int) -> dict[str, Any]:
    """Train one recipe for ``epochs`` in a worker; its record, the weights as arrays."""
    started = time.time()
    soft = np.load(soft_path) if recipe.student else None
    net, history, held = train(
        replace(recipe.config, epochs=epochs),
        training_faces(_parts, recipe, soft),
        Split(at_side(_parts["fer_val"].x, recipe.config.size), _parts["fer_val"].y),
        seed=recipe.seed,
        batch_size=batch,
        device=device,
    )
    return {
        "name": recipe.name,
        "config": replace(recipe.config, epochs=epochs).to_dict(),
        "data": recipe.data,
        "seed": recipe.seed,
        "epoch": held["epoch"],
        "val_accuracy": held["val_accuracy"],
        "val_macro_recall": held["val_macro_recall"],
        "macs": macs(recipe.config),
        "seconds": round(time.time() - started, 1),
        "history": history,
        # Plain numpy, not tensors: tensors would cross the process boundary as
        # shared-memory handles, one open file each.
        "state": {k: v.numpy() for k, v in net.state_dict().items()},
    }


def _round(
    pool: ProcessPoolExecutor, recipes: tuple[GpuRecipe, ...], epochs: list[int], soft: str, device: str, batch: int
) -> list[dict[str, Any]]:
    futures = [pool.submit(_job, r, e, soft, device, batch) for r, e in zip(recipes, epochs, strict=True)]
    return [f.result() for f in futures]


def _save(folder: Path, member: dict[str, Any], teachers: list[str]) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: torch.from_numpy(v) for k, v in member["state"].items()}
    torch.save({**member, "state": state, "teachers": teachers}, folder / f"{member['name']}.pt")
    return {k: v for k, v in member.items() if k not in ("state", "history")} | {"teachers": teachers}


def _smoke(recipes: tuple[GpuRecipe, ...]) -> tuple[GpuRecipe, ...]:
    """The same recipes an eighth as wide, in epochs of 2 batches of 32: a run on a CPU that only proves the steps."""
    return tuple(replace(r, config=replace(r.config, width=r.config.width // 8, steps=2)) for r in recipes)


def distil(args: argparse.Namespace) -> None:
    """Teachers, their reading of FER2013's training faces, then students; all within ``--budget-s``."""
    started = time.time()
    teachers_, students_ = (_smoke(TEACHERS), _smoke(STUDENTS)) if args.smoke else (TEACHERS, STUDENTS)
    batch = 32 if args.smoke else 256
    device = "cuda" if torch.cuda.is_available() else "cpu"
    args.out.mkdir(parents=True, exist_ok=True)
    soft_path = args.out / "teachers.npy"
    context = multiprocessing.get_context("spawn")
    workers = args.workers or len(teachers_) + len(students_)
    record: dict[str, Any] = {"trials": [], "device": device, "recipes": [], "budget_s": args.budget_s}
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init, initargs=(str(args.data), device)) as pool:
        _init(str(args.data), device)
        # One epoch of every network at once measures the pace of each round as it will run.
        probe_t = _round(pool, teachers_, [1] * len(teachers_), "", device, batch)
        np.save(soft_path, averaged_reading(probe_t, _parts["fer_train"].x, device=device))
        probe_s = _round(pool, students_, [1] * len(students_), str(soft_path), device, batch)
        left = args.budget_s - (time.time() - started)
        # Each round lasts as long as its slowest network; teachers and students get as many epochs,
        # as many as fit what is left (0.85 of it: the reading, saving, and the first epoch's warm-up).
        pace = max(p["history"][0]["seconds"] for p in probe_t) + max(p["history"][0]["seconds"] for p in probe_s)
        epochs = args.epochs or max(1, min(args.max_epochs, int(left * 0.85 / pace)))
        log.info("probe took %.0f s: teachers and students get %d epochs", time.time() - started, epochs)
        teachers = _round(pool, teachers_, [epochs] * len(teachers_), "", device, batch)
        names = [t["name"] for t in teachers]
        # Teachers apart: too slow for the ensemble's budget, and 30 to 70 MB each.
        record["recipes"] = [_save(args.out / "teachers", t, []) for t in teachers]
        record["epochs"] = epochs
        (args.out / "search.json").write_text(json.dumps(record, indent=1))
        np.save(soft_path, averaged_reading(teachers, _parts["fer_train"].x, device=device))
        log.info("teachers done at %.0f s: %s", time.time() - started, [round(t["val_accuracy"], 4) for t in teachers])
        students = _round(pool, students_, [epochs] * len(students_), str(soft_path), device, batch)
        record["recipes"] += [_save(args.out, s, names) for s in students]
        (args.out / "search.json").write_text(json.dumps(record, indent=1))
    log.info("done in %.0f s: %s", time.time() - started, json.dumps(record["recipes"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="pack the training faces for the GPU machine")
    p.add_argument("--data", type=Path, default=Path("models/work/faces.npz"))
    p.add_argument("--out", type=Path, default=Path("models/work/gpu/faces.npz"))
    p.add_argument("--limit", type=int, default=0, help="N faces of each part (smoke runs)")
    r = sub.add_parser("distil", help="train the teachers, then their students")
    r.add_argument("--data", type=Path, default=Path("models/work/gpu/faces.npz"))
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--budget-s", type=float, default=480, help="seconds for the whole run")
    r.add_argument("--max-epochs", type=int, default=200)
    r.add_argument("--epochs", type=int, default=0, help="every network's epochs, whatever the budget (smoke runs)")
    r.add_argument("--workers", type=int, default=0, help="processes at once (default: one per network)")
    r.add_argument("--smoke", action="store_true", help="every network an eighth as wide: prove the steps on a CPU")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.command == "pack":
        pack(args.data, args.out, limit=args.limit)
    else:
        distil(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
