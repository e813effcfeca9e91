"""The build's random search: a population's candidate configurations, each judged on its validation split.

For every population a few draws from a small space of input sizes, widths and training settings,
each trained for a few epochs on part of the population's train split; the trials are the build's
record (``training.json``'s ``search``) and the best is trained in full (``models.train.members``).
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from models.train.net import Config, macs
from models.train.train import TRAIN, VAL, Split, load_split, train

log = logging.getLogger("build")

# One trial as the record holds it: ``config`` (``Config.to_dict()``), ``init`` ("fer2013" or
# "scratch"), ``val_accuracy``, ``val_macro_recall``, ``macs`` and ``seconds``. A JSON record, also
# read back from earlier builds and from ``models.train.fer``'s ``search.json``: kept as a dict.
Trial = dict[str, Any]


@dataclass(frozen=True)
class FerStart:
    """The FER2013 member's weights, which another population's trial or member may start from."""

    state: dict[str, torch.Tensor]
    config: Config


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
    init: FerStart | None,
    seed: int,
) -> list[Trial]:
    """Random search: ``trials`` configurations, each trained ``epochs`` on ``share`` of train."""
    space = _space(population)
    rng = random.Random(f"{population}-{seed}")
    results: list[Trial] = []
    seen: set[str] = set()
    while len(results) < trials and len(seen) < 500:
        choice = {k: rng.choice(v) for k, v in space.items()}
        start = choice.pop("init", "scratch")
        if start == "fer2013" and init is not None:
            # The FER2013 member's weights fit only its own architecture.
            choice.update(width=init.config.width, stages=init.config.stages, arch=init.config.arch)
        key = json.dumps([choice, start], sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        config = Config(epochs=epochs, **choice)
        train_set = _subset(load_split(data, population, TRAIN, config.size), share, seed)
        val_set = load_split(data, population, VAL, config.size)
        started = time.time()
        best = train(
            config, train_set, val_set, seed=seed, init=init.state if start == "fer2013" and init else None
        ).held
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
