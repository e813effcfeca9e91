"""Train the FER2013 members, resumable, on a CPU or a GPU, for ``build --states``.

    python -m models.train.fer --data models/work/faces.npz models/work/faces96.npz --out models/work/fer

Each member of ``RECIPES`` is a network configuration and the faces it learns
from: FER2013's training split alone, or with the other populations' training
splits (JAFFE's posed faces, IMFDB's film stills, LFW's news photos; their
validation people stay out). Members train one after the other, or side by
side with ``--parallel`` (one thread each, which uses two CPU cores better
than one member on two threads). A checkpoint is written after every epoch
and a run that finds one resumes from it; a finished member is written as
``NAME.pt`` (config, weights, history: the format ``build --states`` reads)
and skipped by the next run. Only FER2013's validation split judges.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from memegen.labels import LABELS
from memegen.settings import MODELS_DIR
from memegen.vision.ensemble import read_manifest
from models.train import states
from models.train.export import tflite_predict
from models.train.net import Config, macs
from models.train.train import TRAIN, VAL, Split, at_side, averaged_reading, load_split, train

log = logging.getLogger("fer")
# The other populations' training people a recipe's ``data`` adds to FER2013's training faces.
OTHERS: dict[str, tuple[str, ...]] = {"fer2013": (), "all": ("lfw", "jaffe", "imfdb"), "posed": ("jaffe", "imfdb")}


@dataclass(frozen=True)
class Recipe:
    """One FER2013 member: its configuration, its training faces and its seed."""

    name: str
    config: Config
    data: str  # "fer2013": FER2013 train only; "all": plus the other populations' train splits; "posed": no LFW
    seed: int
    teachers: tuple[str, ...] = ()  # recipes whose averaged probabilities it learns from (config.distill)
    cut: int = 48  # the side its faces are cut at (``prepare --size``), then resized to its input side
    start: str = ""  # a recipe whose trained state (``NAME.pt``) it starts from instead of fresh weights
    weigh: tuple[tuple[str, float], ...] = ()  # populations drawn that many times as often as their count says

    @property
    def needs(self) -> tuple[str, ...]:
        """The recipes that must be trained before this one: its teachers and the one it starts from."""
        return (*self.teachers, self.start) if self.start else self.teachers


BASE = Config(
    size=48,
    width=32,
    stages=4,
    dropout=0.3,
    lr=2e-3,
    weight_decay=0.05,
    epochs=42,
    balance=0.2,
    label_smoothing=0.1,
    erase=0.5,
)
# fer_b's faces are 1.4 times as many: fewer epochs give it as many steps, so the two finish together.
# fer_c is fer_a with mixup, which measures whether mixup pays; fer_d is fer_b with another seed.
# fer_e and fer_f are students of the first four (knowledge distillation): each FER2013 face's target
# is half its label, half the teachers' averaged reading of it, which measures whether distillation pays.
# fer_g and fer_h are a second generation: students of all six, trained half as long again, which
# measures whether more teachers and more epochs pay (fer_g on FER2013 alone, fer_h with the others).
# fer_i is a third generation at 40 px: a student of all eight that sees the face at another scale,
# which measures whether a member that differs from the others (not only a stronger one) pays.
# fer_j is fer_g's recipe with cutmix on half the batches, learning from the eight: whether cutmix pays.
# fer_k is fer_h's recipe (FER2013 with the other populations' training people) with fer_j's cutmix,
# learning from all ten: the build's selection weighs the posed populations, which the FER2013-only
# recipes read worse, so the strongest recipe is tried on the data the chosen members learn from.
# fer_l is fer_h's recipe one and a half times as wide (2.25 times the MACs), learning from all eleven:
# whether the capacity the issue asks for pays at 48 px, within the ensemble's budget.
# fer_m is fer_j's recipe (FER2013, cutmix) at fer_l's width, learning from fer_c and fer_e, the two
# members the last build chose: a student of the shipped ensemble, which a run without the float states
# of the eleven can still train, since the shipped int8 members can teach (``teacher_reading``).
# fer_n is fer_m's recipe on fer_k's data (FER2013 with the other populations' training people), learning
# from fer_m as well: the build weighs posed faces, which fer_m (FER2013 alone) reads worse. Its faces are
# 1.4 times fer_m's, so 32 epochs give it about as many steps as fer_m's 40.
# fer_o and fer_p learn from no teacher: averaging fer_m with the members it learned from reads FER2013's
# validation faces no better than fer_m alone (a student carries its teachers' mistakes), so these two
# measure whether members with mistakes of their own pay in the combination. fer_o is fer_m's recipe
# without distillation; fer_p the same on the other populations' training people too (26 epochs: as many
# steps as fer_o's 36). They train side by side (--parallel) in one CPU session.
# fer_q and fer_r: the build chose fer_e alone over fer_o and fer_p, because the members that read FER2013
# best read JAFFE's posed faces worst, and the members that learned LFW's 10,765 news faces too ("all")
# read FER2013 2 to 3 points worse (fer_k against fer_j, fer_n against fer_m, fer_p against fer_o).
# These learn FER2013 with JAFFE's and IMFDB's training people but not LFW's ("posed", 3% more faces),
# from no teacher, two seeds: members that read both kinds of faces, with mistakes of their own.
# fer_s and fer_t: fer_r's recipe ("posed" cost less of FER2013's reading than "all", read JAFFE's new
# people far better than FER2013 alone, and the build chose fer_r) with a schedule two thirds longer,
# which measures whether 36 epochs had converged; fer_t blends with mixup instead of cutmix, to differ.
# fer_u and fer_v: fer_s's recipe (the best FER2013 reader so far) with two more seeds, because the build
# paired fer_s with weaker members that read FER2013 worse than fer_s alone: members as strong as fer_s,
# with mistakes of their own, are what an average can lift. 50 epochs, so that both fit one CPU session.
# fer_x and fer_y: members that see the face at another scale. The training loss was still falling at
# the end of every schedule (36, 50, 60 epochs), and two fer_s-recipe members together read FER2013's
# validation faces under a point better than the better of them (the greedy table of the model card built
# with fer_t, fer_u and fer_v): their mistakes are alike. fer_x sees the face at 56 px (upsampled; 40
# channels, about fer_s's MACs), fer_y at 64 px (32 channels, mixup as fer_t's instead of cutmix), so that
# their stride grids fall elsewhere on the face: whether members that err differently pay. Their schedules
# fit one CPU session side by side (a session's checkout keeps no git-ignored checkpoint for the next);
# an 80-epoch fer_s recipe (fer_w), begun across two sessions, lost its checkpoints and was dropped.
# fer_z and fer_za: another architecture family. fer_x and fer_y, though they see the face at other
# scales, err like fer_s (python -m models.train.diversity). These are plain VGG-style networks (two
# convolutions a stage, then a max-pool; the family of the published FER2013 VGG variants) at fer_s's
# MACs within 10%, with cutmix and with mixup: whether members built otherwise err otherwise. 34 epochs,
# so that both fit one CPU session side by side. They do not: each reads FER2013's validation faces about
# as well as fer_s, a pair of them gets as many of those faces wrong as any two ResNets, and an average
# of fer_s with either reads them no better than fer_s alone. A build with them as candidates chose
# fer_za, fer_z and the JAFFE member, for a few more of JAFFE's validation faces, while LFW's validation
# faces read far worse than with the shipped members (which learnt LFW's training people): not shipped.
# fer_lite: a member that errs differently by construction, not by seed or recipe. Every CPU-trained
# small network above, ResNet or VGG, at 48 to 64 px, gets the same quarter of FER2013's validation faces
# wrong (python -m models.train.diversity). This one starts from EfficientNet-Lite0's ImageNet weights
# (features learned from a million photos of everything, not from 48 px faces) and learns from every
# training set, LFW's news photos included, at 64 px read from crops cut at 96 (faces96.npz). Lower
# learning rate, weaker erasing and no cutmix: a pretrained network is fine-tuned, not trained. Its stem
# and first three blocks stay ImageNet's (edges and textures; the costliest blocks to train on a CPU),
# and an epoch is 100 batches, so that a checkpoint is written every few minutes. 8 of them see each
# training face about three times. fer_lite_long is the same for 30 (about ten passes over the faces):
# fer_lite measures the route in one session, fer_lite_long whether a longer schedule pays (it resumes
# across sessions from its checkpoint, kept in models/states/).
# fer_lite_posed: fer_lite_long read LFW's and IMFDB's validation faces better than any member, but
# FER2013's about 8 points and JAFFE's about 20 points below the shipped pair, so ship's guard refused
# every set with it. This one starts from fer_lite_long's trained state, trains all but the stem and
# the first block (fer_lite_long kept three blocks ImageNet's), at half the learning rate, and draws
# JAFFE's posed faces 8 times and IMFDB's 4 times as often as their counts say (148 and 738 training
# faces beside FER2013's 25,899): whether a pretrained member that reads posed faces too earns its place.
# fer_lite_96: ship found every set with fer_lite_posed within the time budget (each member read with or
# without its mirror view) but refused them all on FER2013's validation faces, which the pretrained
# member reads 6 to 8 points below the shipped pair. This one reads it at 96 px, the side its faces are
# cut at (the network pools globally, so fer_lite_posed's weights carry over): ImageNet's features are
# learnt at far larger sides than 64 px, and its cost on this project's int8 runtime fits beside the pair.
# fer_lite_96_kd: in the shipped triple fer_lite_96 lifted LFW and IMFDB by 7 points but read FER2013 5
# points below fer2013, and the ensemble stayed under its best member on FER2013. This one goes on from
# fer_lite_96's state learning FER2013's faces half from their labels, half from the shipped pair's
# reading (fer_s and fer_e, their int8 members), the other populations from their labels alone.
# fer_lite_96_long: fer_lite_96 read FER2013's validation faces better at each of its last three epochs
# (64.6, 64.7, 65.2%), so its 8 epochs had not converged. This one goes on from its state for 12 more at
# two thirds of its learning rate, the same faces drawn the same way: whether a longer schedule closes
# the FER2013 gap that keeps the ensemble under fer2013 alone there, without distillation's loss on IMFDB.
# fer_lite_112: the longer schedule paid about a point, the step from 64 to 96 px more, and the shipped
# triple still reads FER2013's public_test under fer2013 alone. This one goes on from fer_lite_96_long's
# state at 112 px (the same 96 px cut, upsampled, as FER2013's 48 px faces already are): ImageNet's
# features are learnt at sides larger still, and a 112 px int8 Lite0 fits ship's budget. It did not: its
# training loss fell below fer_lite_96_long's while FER2013's validation read worse at every epoch (the
# run's log, in float), and it was stopped two thirds of the way (session 27's note has the figures).
# fer_lite_96_mix: that is a network that learns its training faces by heart (it has seen FER2013's about
# twenty times), so this one goes on from fer_lite_96_long at 96 px with cutmix (fer_s's regulariser, the
# best FER2013 reader's) at a lower learning rate: whether the Lite0 line's FER2013 reading still has
# a point or two to give once it cannot memorise whole faces.
# fer_lite_fresh: it did not (it levelled off where fer_lite_96_long did): a state that has memorised its
# faces is a poor start. This one starts from ImageNet's weights again, at 96 px from the first epoch, with
# cutmix from the first epoch, for 60 epochs (about thirty passes over the faces): the whole Lite0 line's
# length in one schedule that never lets it learn whole faces by heart. It spanned two sessions; its kept
# state (models/states/) is the finished run's last epoch, from which ``fer`` rebuilds its NAME.pt.
# fer_w: fer2013_2's recipe (fer_e: 48 px, width 32, half its target from teachers, every population's
# faces) taught by the pair that ships since fer_lite_fresh (fer_e's own int8 member and fer_lite_fresh),
# with cutmix, JAFFE and IMFDB drawn as the Lite0 line draws them, for half again fer_e's epochs: whether
# the Lite0's reading of posed and news faces carries into a member of fer2013_2's size, to take its place.
LITE = replace(BASE, arch="lite0", size=64, dropout=0.2, lr=1e-3, epochs=8, erase=0.25, freeze=3, steps=100)
# How much more often the fer_lite_posed line draws JAFFE's and IMFDB's training faces than their counts say.
POSED_WEIGH = (("jaffe", 8.0), ("imfdb", 4.0))
# The fer_lite_96 line: Lite0 at the 96 px side its faces are cut at, all but its stem and first block trained.
LITE_96 = replace(LITE, size=96, freeze=1)
TEACHERS = ("fer_a", "fer_b", "fer_c", "fer_d")
SECOND = (*TEACHERS, "fer_e", "fer_f")
THIRD = (*SECOND, "fer_g", "fer_h")
FOURTH = (*THIRD, "fer_i", "fer_j")
FIFTH = (*FOURTH, "fer_k")
# The FER2013 members shipped when fer_m was written (its teachers); the shipped set has changed since.
SHIPPED_THEN = ("fer_c", "fer_e")
RECIPES = (
    Recipe("fer_a", BASE, "fer2013", seed=1),
    Recipe("fer_b", replace(BASE, epochs=30), "all", seed=2),
    Recipe("fer_c", replace(BASE, mixup=0.2), "fer2013", seed=3),
    Recipe("fer_d", replace(BASE, epochs=30), "all", seed=4),
    Recipe("fer_e", replace(BASE, epochs=30, distill=0.5), "all", seed=5, teachers=TEACHERS),
    Recipe("fer_f", replace(BASE, epochs=30, distill=0.5, mixup=0.2), "all", seed=6, teachers=TEACHERS),
    Recipe("fer_g", replace(BASE, epochs=45, distill=0.5), "fer2013", seed=7, teachers=SECOND),
    Recipe("fer_h", replace(BASE, epochs=45, distill=0.5), "all", seed=8, teachers=SECOND),
    Recipe("fer_i", replace(BASE, size=40, epochs=42, distill=0.5), "all", seed=9, teachers=THIRD),
    Recipe("fer_j", replace(BASE, epochs=45, distill=0.5, cutmix=0.5), "fer2013", seed=10, teachers=THIRD),
    Recipe("fer_k", replace(BASE, epochs=45, distill=0.5, cutmix=0.5), "all", seed=11, teachers=FOURTH),
    Recipe("fer_l", replace(BASE, width=48, epochs=45, distill=0.5), "all", seed=12, teachers=FIFTH),
    Recipe(
        "fer_m", replace(BASE, width=48, epochs=40, distill=0.5, cutmix=0.5), "fer2013", seed=13, teachers=SHIPPED_THEN
    ),
    Recipe(
        "fer_n",
        replace(BASE, width=48, epochs=32, distill=0.5, cutmix=0.5),
        "all",
        seed=14,
        teachers=(*SHIPPED_THEN, "fer_m"),
    ),
    Recipe("fer_o", replace(BASE, width=48, epochs=36, cutmix=0.5), "fer2013", seed=15),
    Recipe("fer_p", replace(BASE, width=48, epochs=26, cutmix=0.5), "all", seed=16),
    Recipe("fer_q", replace(BASE, width=48, epochs=36, cutmix=0.5), "posed", seed=17),
    Recipe("fer_r", replace(BASE, width=48, epochs=36, cutmix=0.5), "posed", seed=18),
    Recipe("fer_s", replace(BASE, width=48, epochs=60, cutmix=0.5), "posed", seed=19),
    Recipe("fer_t", replace(BASE, width=48, epochs=60, mixup=0.2), "posed", seed=20),
    Recipe("fer_u", replace(BASE, width=48, epochs=50, cutmix=0.5), "posed", seed=21),
    Recipe("fer_v", replace(BASE, width=48, epochs=50, cutmix=0.5), "posed", seed=22),
    Recipe("fer_x", replace(BASE, size=56, width=40, epochs=32, cutmix=0.5), "posed", seed=24),
    Recipe("fer_y", replace(BASE, size=64, width=32, epochs=40, mixup=0.2), "posed", seed=25),
    Recipe("fer_z", replace(BASE, arch="vgg", epochs=34, cutmix=0.5), "posed", seed=26),
    Recipe("fer_za", replace(BASE, arch="vgg", epochs=34, mixup=0.2), "posed", seed=27),
    Recipe("fer_lite", LITE, "all", seed=28, cut=96),
    Recipe("fer_lite_long", replace(LITE, epochs=30), "all", seed=29, cut=96),
    Recipe(
        "fer_lite_posed",
        replace(LITE, epochs=12, lr=5e-4, freeze=1),
        "all",
        seed=30,
        cut=96,
        start="fer_lite_long",
        weigh=POSED_WEIGH,
    ),
    Recipe(
        "fer_lite_96",
        replace(LITE_96, epochs=8, lr=3e-4),
        "all",
        seed=31,
        cut=96,
        start="fer_lite_posed",
        weigh=POSED_WEIGH,
    ),
    Recipe(
        "fer_lite_96_kd",
        replace(LITE_96, epochs=6, lr=2e-4, distill=0.5),
        "all",
        seed=32,
        cut=96,
        teachers=("fer_s", "fer_e"),
        start="fer_lite_96",
        weigh=POSED_WEIGH,
    ),
    Recipe(
        "fer_lite_96_long",
        replace(LITE_96, epochs=12, lr=2e-4),
        "all",
        seed=33,
        cut=96,
        start="fer_lite_96",
        weigh=POSED_WEIGH,
    ),
    Recipe(
        "fer_lite_112",
        replace(LITE_96, size=112, epochs=20, lr=3e-4),
        "all",
        seed=34,
        cut=96,
        start="fer_lite_96_long",
        weigh=POSED_WEIGH,
    ),
    Recipe(
        "fer_lite_96_mix",
        replace(LITE_96, epochs=14, lr=1.5e-4, cutmix=0.5),
        "all",
        seed=35,
        cut=96,
        start="fer_lite_96_long",
        weigh=POSED_WEIGH,
    ),
    Recipe(
        "fer_lite_fresh",
        replace(LITE_96, epochs=60, cutmix=0.5),
        "all",
        seed=36,
        cut=96,
        weigh=POSED_WEIGH,
    ),
    Recipe(
        "fer_w",
        replace(BASE, epochs=45, distill=0.5, cutmix=0.5),
        "all",
        seed=37,
        teachers=("fer_e", "fer_lite_fresh"),
        weigh=POSED_WEIGH,
    ),
)


def training_faces(data: dict[str, np.ndarray], recipe: Recipe, *, soft: np.ndarray | None = None) -> Split:
    """The faces a recipe learns from, at its input side.

    ``soft``: the teachers' probabilities for FER2013's training faces; the other
    populations' faces keep their labels as targets (the teachers learned FER2013).
    """
    size = recipe.config.size
    populations = ("fer2013", *OTHERS[recipe.data])
    parts = [load_split(data, population, TRAIN, size) for population in populations]
    x, y = np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts])
    weigh = dict(recipe.weigh)
    weight = (
        np.concatenate([np.full(len(p.y), weigh.get(pop, 1.0)) for pop, p in zip(populations, parts, strict=True)])
        if weigh
        else None
    )
    if soft is None:
        return Split(x, y, weight=weight)
    others = np.eye(len(LABELS), dtype=np.float32)[y[len(soft) :]]
    return Split(x, y, np.concatenate([soft, others]), weight)


def teachers_path(out: Path, teachers: tuple[str, ...]) -> Path:
    """Where one set of teachers' averaged probabilities is kept: one file per set."""
    return out / f"teachers-{'+'.join(teachers)}.npy"


def shipped_members(models: Path = MODELS_DIR) -> dict[str, dict[str, Any]]:
    """The shipped FER2013 members by recipe: manifest entry and int8 model, which can teach."""
    manifest = read_manifest(models)
    return {
        entry["recipe"]: {"entry": entry, "model": (models / entry["file"]).read_bytes()}
        for entry in manifest["members"]
        if entry.get("recipe")
    }


def teacher_available(out: Path, name: str, shipped: dict[str, dict[str, Any]], *, pending: set[str]) -> bool:
    """A teacher can teach from its float state (``NAME.pt``) or, failing that, as a shipped int8 member.

    Not as a shipped member while this run is still to train it (``pending``): its students wait for it.
    """
    return (out / f"{name}.pt").exists() or (name in shipped and name not in pending)


def teacher_reading(out: Path, name: str, faces: np.ndarray, shipped: dict[str, dict[str, Any]]) -> np.ndarray:
    """One teacher's probabilities for faces and their mirror images.

    From its float state when this run has it; otherwise from the shipped int8 member of that recipe
    (within a point of the float one, as the card's float-vs-int8 table shows), so that a student of the
    shipped members can be trained on a machine that never held their float states.
    """
    path = out / f"{name}.pt"
    if path.exists():
        return averaged_reading([torch.load(path, weights_only=False)], faces)
    entry = shipped[name]["entry"]
    sized = at_side(faces, entry["input_size"])
    return tflite_predict(shipped[name]["model"], sized, flip=True)


def _teacher_key(out: Path, name: str, shipped: dict[str, dict[str, Any]]) -> Any:
    path = out / f"{name}.pt"
    return path.stat().st_mtime_ns if path.exists() else shipped[name]["entry"]["sha256"]


def teacher_probabilities(
    data: dict[str, np.ndarray], out: Path, teachers: tuple[str, ...], shipped: dict[str, dict[str, Any]]
) -> Path:
    """Average the teachers' probabilities (face and mirror image) on FER2013's training faces, once.

    Every teacher reads the student's cut, resized to its own input: fer_lite_fresh, trained on 96 px
    cuts, read FER2013's validation faces better from the 48 px cut blown up than from its own cut
    (session 29's note has the figures and the command), FER2013's faces being 48 px to begin with.

    Written to ``teachers_path`` beside the teachers' ``NAME.pt`` and reused while they stay the same.
    """
    path = teachers_path(out, teachers)
    stamp = path.with_suffix(".json")
    key = {name: _teacher_key(out, name, shipped) for name in teachers}
    if path.exists() and stamp.exists() and json.loads(stamp.read_text()) == key:
        return path
    faces = data["fer2013_x"][data["fer2013_split"] == TRAIN]
    reading = sum(teacher_reading(out, name, faces, shipped) for name in teachers) / len(teachers)
    np.save(path, np.asarray(reading, dtype=np.float32))
    log.info("teachers %s read FER2013's training faces", ", ".join(teachers))
    stamp.write_text(json.dumps(key))
    return path


def data_for(paths: list[Path], recipe: Recipe) -> Path:
    """The prepared crops a recipe learns from: the file of ``--data`` cut at its side."""
    for path in paths:
        with np.load(path) as data:
            if data["fer2013_x"].shape[-1] == recipe.cut:
                return path
    raise ValueError(f"{recipe.name} learns from faces cut at {recipe.cut} px: no --data file holds them")


def train_member(
    data_path: Path, out: Path, recipe: Recipe, *, threads: int, epochs: int | None, steps: int = 0
) -> dict[str, Any]:
    """Train one recipe to ``out/NAME.pt`` (resuming from ``out/NAME.ckpt``) and return its record.

    ``epochs`` and ``steps`` (batches an epoch), where given, override the recipe's (smoke runs).
    """
    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {recipe.name} %(message)s")
    config = replace(recipe.config, epochs=epochs or recipe.config.epochs, steps=steps or recipe.config.steps)
    data = dict(np.load(data_path))
    soft = np.load(teachers_path(out, recipe.teachers)) if recipe.teachers else None
    # A run begun on another machine goes on from the checkpoint it kept (models.train.states).
    states.restore(recipe.name, out)
    init = torch.load(out / f"{recipe.start}.pt", weights_only=False)["state"] if recipe.start else None
    started = time.time()
    net, history, held = train(
        config,
        training_faces(data, recipe, soft=soft),
        load_split(data, "fer2013", VAL, config.size),
        seed=recipe.seed,
        init=init,
        checkpoint=out / f"{recipe.name}.ckpt",
    )
    member = {
        "name": recipe.name,
        "config": config.to_dict(),
        "data": recipe.data,
        "seed": recipe.seed,
        "teachers": list(recipe.teachers),
        "start": recipe.start,
        "weigh": dict(recipe.weigh),
        # The epoch whose weights the member holds, not the history's best (a kept state may give that up).
        "epoch": held["epoch"],
        "val_accuracy": held["val_accuracy"],
        "val_macro_recall": held["val_macro_recall"],
        "macs": macs(config),
        # The side its faces were cut at (prepare --size), before they were resized to its input.
        "crop_size": int(data["fer2013_x"].shape[-1]),
        "seconds": round(time.time() - started, 1),
        "history": history,
        "state": net.state_dict(),
    }
    torch.save(member, out / f"{recipe.name}.pt")
    return {k: v for k, v in member.items() if k not in ("state", "history")}


def train_members(args: argparse.Namespace, todo: list[Recipe], *, epochs: int | None) -> list[dict[str, Any]]:
    """Train recipes one after the other, or side by side with ``--parallel``."""
    if args.parallel and len(todo) > 1:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(len(todo), os.cpu_count() or 1), mp_context=context) as pool:
            futures = [
                pool.submit(
                    train_member, data_for(args.data, r), args.out, r, threads=1, epochs=epochs, steps=args.steps
                )
                for r in todo
            ]
            return [f.result() for f in futures]
    return [
        train_member(data_for(args.data, r), args.out, r, threads=args.threads, epochs=epochs, steps=args.steps)
        for r in todo
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        nargs="+",
        default=[Path("models/work/faces.npz")],
        help="prepare's crops, one file a side (each recipe learns from its own cut)",
    )
    parser.add_argument("--out", type=Path, default=Path("models/work/fer"))
    parser.add_argument("--only", nargs="*", default=[], help="names of the recipes to train (default: all)")
    parser.add_argument("--epochs", type=int, default=0, help="override every recipe's epochs (smoke runs)")
    parser.add_argument("--steps", type=int, default=0, help="override every recipe's batches an epoch (smoke runs)")
    parser.add_argument("--parallel", action="store_true", help="train the members side by side, one thread each")
    parser.add_argument("--threads", type=int, default=2, help="threads per member when not --parallel")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if missing := [path for path in args.data if not path.exists()]:
        print(f"error: {missing[0]}: no such file; make it with python -m models.train.prepare", file=sys.stderr)
        return 2
    names = [r.name for r in RECIPES]
    if len(set(names)) < len(names):
        # Each recipe resumes from, and writes, the files of its name: two of one name would share them.
        twice = sorted({name for name in names if names.count(name) > 1})
        print(f"error: recipes named twice: {', '.join(twice)}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    recipes = [r for r in RECIPES if not args.only or r.name in args.only]
    todo = [r for r in recipes if not (args.out / f"{r.name}.pt").exists()]
    log.info("%d members to train: %s", len(todo), ", ".join(r.name for r in todo) or "none")
    epochs = args.epochs or None
    # Teachers first: the students learn from what they read, and a student can teach the next generation.
    results = train_members(args, [r for r in todo if not r.needs], epochs=epochs)
    students = [r for r in todo if r.needs]
    taught = [r for r in students if r.teachers]
    data = dict(np.load(data_for(args.data, taught[0]))) if taught else {}
    shipped = shipped_members() if taught else {}
    while students:
        pending = {r.name for r in students}
        wanted = {n for r in students for n in r.teachers}
        absent = {n for n in wanted if not teacher_available(args.out, n, shipped, pending=pending)}
        # A recipe starts only from a float state this run or an earlier one trained, never a shipped member.
        absent |= {r.start for r in students if r.start and not (args.out / f"{r.start}.pt").exists()}
        ready = [r for r in students if not absent & set(r.needs)]
        if not ready:
            missing = sorted(absent)
            print(f"error: the recipes these need are not trained: {', '.join(missing)}", file=sys.stderr)
            return 2
        for teachers in sorted({r.teachers for r in ready if r.teachers}):
            teacher_probabilities(data, args.out, teachers, shipped)
        results += train_members(args, ready, epochs=epochs)
        students = [r for r in students if r not in ready]
    for result in results:
        log.info("trained %s", json.dumps(result))
    # build --states reads the trials of the search that chose the recipes; these are fixed.
    record = {"trials": [], "recipes": [{"name": r.name, "data": r.data, **r.config.to_dict()} for r in recipes]}
    (args.out / "search.json").write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
