"""Float states that must outlive a machine: kept in ``models/states/``, committed, read back by training.

    python -m models.train.states keep models/work/fer/fer_lite_long.ckpt

``models/work/`` is git-ignored and lost with the checkout, so a long training that spans sessions,
or a member that later teaches or is rebuilt, keeps its float state here. A kept checkpoint holds
the current weights in half precision and the schedule, history and random streams as they are;
it drops the optimizer's moments (they re-form in a few hundred steps) and the best epoch's weights
unless they are the current ones (they are then the same tensors, read back from the current
weights). An EfficientNet-Lite0 run costs about 7 MB in the repository instead of 53;
``fer`` resumes from it where ``models/work`` has no checkpoint of that recipe.
"""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

import torch

log = logging.getLogger("states")
KEPT = Path("models/states")


def keep(checkpoint: Path, *, kept: Path = KEPT) -> Path:
    """Write the compact copy of a training checkpoint into ``kept`` (same file name); return its path."""
    state = torch.load(checkpoint, weights_only=False)
    state.pop("optimizer", None)
    state["net"] = {k: v.half() if v.is_floating_point() else v for k, v in state["net"].items()}
    accuracy = state["best"][0]
    current = state["history"][-1]["val_accuracy"] if state["history"] else None
    # (accuracy, None): the best epoch is the current one; a best epoch before it is given up, and the
    # resumed run keeps the best of the epochs still to come (the history still says what it read).
    state["best"] = (accuracy if accuracy == current else -1.0, None)
    kept.mkdir(parents=True, exist_ok=True)
    out = kept / checkpoint.name
    partial = out.with_name(out.name + ".partial")
    torch.save(state, partial)
    partial.replace(out)
    log.info("kept %s at epoch %d (%.1f MB)", out, state["epoch"], out.stat().st_size / 1e6)
    return out


def restore(name: str, work: Path, *, kept: Path = KEPT) -> bool:
    """Copy the kept checkpoint ``NAME.ckpt`` into ``work`` where ``work`` has none; whether one was copied."""
    source, target = kept / f"{name}.ckpt", work / f"{name}.ckpt"
    if target.exists() or not source.exists():
        return False
    work.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    log.info("resuming %s from the kept %s", name, source)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    keeping = sub.add_parser("keep", help="keep compact copies of training checkpoints in models/states/")
    keeping.add_argument("checkpoints", type=Path, nargs="+")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for checkpoint in args.checkpoints:
        keep(checkpoint)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
