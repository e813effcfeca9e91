"""Search and train FER2013 members on a GPU, for ``build --states``.

FER2013 is the population where capacity and epochs pay; a CPU affords a few
small trials, a GPU affords a real search. Two steps:

    # here: pack FER2013's train and validation faces at the members' input side
    python -m models.train.gpu pack --data models/work/faces.npz --out models/work/gpu/fer48.npz
    # on the GPU machine (needs only torch, numpy, opencv): search, then train the best
    python -m models.train.gpu run --data models/work/gpu/fer48.npz --out OUT --budget-s 420

``run`` trains ``--trials`` random configurations for ``--search-epochs`` each,
several at once (small networks leave a GPU mostly idle), then trains the
``--top`` best again with ``--seeds`` seeds for as many epochs as the time
budget allows. It writes one state file per final member (``fer_N.pt``: config,
weights, history) and ``search.json``; ``build --states`` quantizes and
combines them. Only the validation split judges; public_test is not packed.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import multiprocessing
import random
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.train.net import Config, macs
from models.train.train import TRAIN, VAL, Split, load_split, train

log = logging.getLogger("gpu")
SIZE = 48
SPACE: dict[str, list[Any]] = {
    "width": [32, 48, 64],
    "stages": [3, 4],
    "lr": [1e-3, 2e-3, 4e-3],
    "balance": [0.2, 0.4, 0.6],
    "dropout": [0.2, 0.3, 0.5],
    "weight_decay": [0.01, 0.05],
    "label_smoothing": [0.0, 0.1],
}


def pack(data_path: Path, out: Path) -> None:
    """FER2013 train and validation faces at the input side, for the GPU machine."""
    data = dict(np.load(data_path))
    train_set = load_split(data, "fer2013", TRAIN, SIZE)
    val_set = load_split(data, "fer2013", VAL, SIZE)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, train_x=train_set.x, train_y=train_set.y, val_x=val_set.x, val_y=val_set.y)
    log.info("packed %d train and %d validation faces into %s", len(train_set.y), len(val_set.y), out)


_data: dict[str, np.ndarray] = {}


def _init(data_path: str) -> None:
    logging.basicConfig(level=logging.WARNING)
    torch.backends.cudnn.benchmark = True
    _data.update(np.load(data_path))


def _to_bytes(state: dict[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def _job(config: dict[str, Any], seed: int) -> dict[str, Any]:
    started = time.time()
    net, history = train(
        Config(**config),
        Split(_data["train_x"], _data["train_y"]),
        Split(_data["val_x"], _data["val_y"]),
        seed=seed,
        batch_size=256,
        device="cuda" if torch.cuda.is_available() else "cpu",
    )
    best = max(history, key=lambda row: row["val_accuracy"])
    return {
        "config": config,
        "seed": seed,
        "val_accuracy": best["val_accuracy"],
        "val_macro_recall": best["val_macro_recall"],
        "macs": macs(Config(**config)),
        "seconds": round(time.time() - started, 1),
        "history": history,
        # Bytes rather than tensors: tensors would cross the process boundary
        # as shared-memory handles, one open file each.
        "state": _to_bytes(net.state_dict()),
    }


def run(args: argparse.Namespace) -> None:
    started = time.time()
    rng = random.Random(args.seed)
    configs: list[dict[str, Any]] = []
    while len(configs) < args.trials:
        choice = {k: rng.choice(v) for k, v in SPACE.items()}
        choice.update(size=SIZE, epochs=args.search_epochs)
        if choice not in configs:
            configs.append(choice)
    args.out.mkdir(parents=True, exist_ok=True)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.workers, mp_context=context, initializer=_init, initargs=(str(args.data),)) as pool:
        trials = list(pool.map(_job, configs, [args.seed] * len(configs)))
        for trial in trials:
            trial.pop("state")
            log.info("trial %s", json.dumps({k: v for k, v in trial.items() if k != "history"}))
        ranked = sorted(trials, key=lambda t: -t["val_accuracy"])
        search_seconds = time.time() - started
        # Epochs for the final round from the measured pace, to fit what is left of the budget.
        per_epoch = max(t["seconds"] for t in trials) / args.search_epochs
        rounds = -(-args.top * args.seeds // args.workers)
        left = args.budget_s - search_seconds
        epochs = int(min(args.max_epochs, max(args.search_epochs, left / rounds / per_epoch * 0.85)))
        log.info("search took %.0f s; final members get %d epochs", search_seconds, epochs)
        final = [
            ({**t["config"], "epochs": epochs}, args.seed + 1 + seed)
            for t in ranked[: args.top]
            for seed in range(args.seeds)
        ]
        finished: list[dict[str, Any]] = []
        record = {"space": SPACE, "trials": trials, "final_epochs": epochs, "final": finished}
        for index, member in enumerate(pool.map(_job, *zip(*final, strict=True))):
            member["state"] = torch.load(io.BytesIO(member["state"]))
            torch.save(member, args.out / f"fer_{index}.pt")
            finished.append({k: v for k, v in member.items() if k not in ("state", "history")})
            (args.out / "search.json").write_text(json.dumps(record, indent=1))
            log.info("final member %d: %s", index, json.dumps(finished[-1]))
    log.info("done in %.0f s", time.time() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="pack FER2013 train and validation faces for the GPU machine")
    p.add_argument("--data", type=Path, default=Path("models/work/faces.npz"))
    p.add_argument("--out", type=Path, default=Path("models/work/gpu/fer48.npz"))
    r = sub.add_parser("run", help="search and train on the GPU")
    r.add_argument("--data", type=Path, default=Path("models/work/gpu/fer48.npz"))
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--trials", type=int, default=16)
    r.add_argument("--search-epochs", type=int, default=25)
    r.add_argument("--top", type=int, default=3, help="configurations trained again in full")
    r.add_argument("--seeds", type=int, default=2, help="seeds per configuration in the final round")
    r.add_argument("--max-epochs", type=int, default=150)
    r.add_argument("--workers", type=int, default=8)
    r.add_argument("--budget-s", type=float, default=420, help="seconds for the whole run")
    r.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.command == "pack":
        pack(args.data, args.out)
    else:
        run(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
