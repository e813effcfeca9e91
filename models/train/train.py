"""Train one ensemble member on one population's faces (PyTorch, CPU or GPU).

Reads the arrays ``prepare`` wrote. Classes are balanced by sampling each epoch
with weights ``count**-balance`` (oversampling rare classes, undersampling
common ones), and every batch is augmented: flips, rotations, shifts and
zooms (a random crop with padding), brightness and contrast, and random erasing.
On a CPU with bfloat16 support (AMX or AVX-512 BF16) the forward and backward
passes run in bfloat16 autocast, about twice as fast; the weights stay float32.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from memegen.labels import LABELS
from memegen.offline.metrics import score
from models.train.net import Config, ExpressionNet

log = logging.getLogger("train")
TRAIN, VAL, TEST = 0, 1, 2


@dataclass
class Split:
    """Faces (n, size, size) uint8, their labels and, for distillation, teachers' probabilities (n, 7).

    ``weight``: each face's sampling weight beside its class's (a population weighed up), or None.
    """

    x: np.ndarray
    y: np.ndarray
    soft: np.ndarray | None = None
    weight: np.ndarray | None = None


def at_side(faces: np.ndarray, size: int) -> np.ndarray:
    """(n, side, side) uint8 faces resized to ``size`` (area interpolation when shrinking)."""
    if faces.shape[-1] == size or len(faces) == 0:
        return faces
    interpolation = cv2.INTER_AREA if size < faces.shape[-1] else cv2.INTER_LINEAR
    return np.stack([cv2.resize(f, (size, size), interpolation=interpolation) for f in faces])


def load_split(data: dict[str, np.ndarray], population: str, split: int, size: int) -> Split:
    """One split of one population, resized to the member's input side."""
    mask = data[f"{population}_split"] == split
    return Split(at_side(data[f"{population}_x"][mask], size), data[f"{population}_y"][mask].astype(np.int64))


def metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, object]:
    """``memegen.offline.evaluate.score`` as a dict: n, accuracy, macro recall, per-class recall, confusion."""
    accuracy, macro_recall, per_class, confusion = score(y_true, y_pred)
    return {
        "n": len(y_true),
        "accuracy": accuracy,
        "macro_recall": macro_recall,
        "per_class": per_class,
        "confusion": confusion,
    }


def augment(x: torch.Tensor, *, erase: float, generator: torch.Generator) -> torch.Tensor:
    """Random flips, rotations, shifts, zooms, brightness, contrast and erasing of a [-1, 1] batch.

    The random numbers come from ``generator``, on the batch's device. ``erase``
    is the share of faces that get one random rectangle (2 to 20% of the face)
    filled with noise, so that no single region (a mouth, an eyebrow) decides alone.
    """
    n, device = x.shape[0], x.device

    def rand(count: int) -> torch.Tensor:
        return torch.rand(count, generator=generator, device=device)

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return rand(n) * (hi - lo) + lo

    angle = uniform(-15, 15) * math.pi / 180
    zoom = uniform(0.85, 1.15)
    flip = torch.where(rand(n) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack(
        [
            torch.stack([cos * flip, -sin, uniform(-0.12, 0.12)], 1),
            torch.stack([sin * flip, cos, uniform(-0.12, 0.12)], 1),
        ],
        1,
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)
    contrast = uniform(0.6, 1.4)[:, None, None, None]
    brightness = uniform(-0.3, 0.3)[:, None, None, None]
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - mean) * contrast + mean + brightness).clamp(-1, 1)
    if erase > 0:
        side = x.shape[-1]
        area = uniform(0.02, 0.2)
        aspect = torch.exp(uniform(-1.0, 1.0))
        h = (torch.sqrt(area * aspect) * side).clamp(1, side)
        w = (torch.sqrt(area / aspect) * side).clamp(1, side)
        top = rand(n) * (side - h)
        left = rand(n) * (side - w)
        coords = torch.arange(side, device=device, dtype=x.dtype)
        rows = (coords[None] >= top[:, None]) & (coords[None] < (top + h)[:, None])
        cols = (coords[None] >= left[:, None]) & (coords[None] < (left + w)[:, None])
        chosen = (rand(n) < erase)[:, None, None]
        mask = (rows[:, :, None] & cols[:, None, :] & chosen)[:, None]
        noise = torch.rand(x.shape, generator=generator, device=device) * 2 - 1
        x = torch.where(mask, noise, x)
    return x


def cutmix(x: torch.Tensor, pasted: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, float]:
    """``x`` with one rectangle of ``pasted`` in every face (cutmix), and the share of ``x`` left.

    The rectangle's area is a uniform share of the face, its place uniform (clipped at the edges);
    the returned share is what the targets are blended by: a face that is 30% another face's
    pixels is read as 30% the other face's expression.
    """
    side = x.shape[-1]
    cut = math.sqrt(1.0 - rng.uniform())
    h = w = round(side * cut)
    cy, cx = int(rng.integers(side)), int(rng.integers(side))
    y0, y1 = max(cy - h // 2, 0), min(cy + h - h // 2, side)
    x0, x1 = max(cx - w // 2, 0), min(cx + w - w // 2, side)
    mixed = x.clone()
    mixed[..., y0:y1, x0:x1] = pasted[..., y0:y1, x0:x1]
    return mixed, 1.0 - (y1 - y0) * (x1 - x0) / side**2


def bf16_autocast_pays(device: str) -> bool:
    """Whether bfloat16 autocast speeds training up here: a GPU, or a CPU with AMX or AVX-512 BF16."""
    if device != "cpu":
        return True
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def to_tensor(faces: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(faces).float().unsqueeze(1) * (2 / 255) - 1


def predict(net: ExpressionNet, faces: np.ndarray, *, batch: int = 64) -> np.ndarray:
    """Probabilities of a float network for uint8 faces (no augmentation), on the network's device."""
    # Small batches: at 512 a 96 px Lite0's activations are hundreds of MB, allocated and returned to
    # the system at every layer, and the CPU spends its time in the kernel instead of the network.
    net.eval()
    device = next(net.parameters()).device
    out = []
    with torch.no_grad():
        for i in range(0, len(faces), batch):
            out.append(torch.softmax(net(to_tensor(faces[i : i + batch]).to(device)), -1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, len(LABELS)), dtype=np.float32)


def averaged_reading(members: list[dict[str, Any]], faces: np.ndarray, *, device: str = "cpu") -> np.ndarray:
    """The members' averaged probabilities for faces and their mirror images: what students learn from.

    ``members`` are trained-member records (``config`` and ``state``, tensors or arrays); each reads
    the faces at its own input side.
    """
    total = np.zeros((len(faces), len(LABELS)), dtype=np.float64)
    for member in members:
        config = Config(**member["config"])
        net = ExpressionNet(config)
        net.load_state_dict({k: torch.as_tensor(v) for k, v in member["state"].items()})
        net = net.to(device)
        sized = at_side(faces, config.size)
        total += (predict(net, sized) + predict(net, np.ascontiguousarray(sized[:, :, ::-1]))) / 2
    return (total / len(members)).astype(np.float32)


class Trained(NamedTuple):
    """What ``train`` hands back: the network, every epoch's row, and the row of the epoch it holds.

    ``held`` is the epoch whose weights ``net`` holds (the best one this run could keep); a run resumed
    from a kept state that gave up its best epoch holds a later one, so records quote ``held``, not the
    best row of ``history``.
    """

    net: ExpressionNet
    history: list[dict[str, float]]
    held: dict[str, float]


def _cpu_state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}


def sampling_weights(y: np.ndarray, balance: float, *, weight: np.ndarray | None = None) -> np.ndarray:
    """Each face's chance to be drawn: its class's ``count**-balance``, times its own ``weight`` if any."""
    counts = np.bincount(y, minlength=len(LABELS)).astype(np.float64)
    per_class = np.where(counts > 0, np.maximum(counts, 1) ** -balance, 0)
    weights = per_class[y] if weight is None else per_class[y] * weight
    return weights / weights.sum()


def train(
    config: Config,
    train_set: Split,
    val_set: Split,
    *,
    seed: int = 0,
    init: dict[str, torch.Tensor] | None = None,
    checkpoint: Path | None = None,
    epochs: int | None = None,
    batch_size: int = 128,
    min_steps: int = 25,
    device: str = "cpu",
    stop_after: int | None = None,
) -> Trained:
    """Train a member and return the epoch with the best validation accuracy, on the CPU.

    With ``checkpoint``, the state is saved after every epoch and a run that
    finds one resumes from it, so a long run survives being stopped.
    ``device`` ("cuda") trains on a GPU; the returned network is on the CPU. ``stop_after``: leave
    after that many epochs of this call, as a session's end would (the checkpoint holds the rest).
    """
    torch.manual_seed(seed)
    generator = torch.Generator(device=device).manual_seed(seed)
    rng = np.random.default_rng(seed)
    # A pretrained family starts from its own weights unless ``init`` brings others.
    net = ExpressionNet(config, pretrained=init is None)
    if init is not None:
        own = net.state_dict()
        # Take every tensor whose shape fits: the stages, usually not the head.
        own.update({k: v for k, v in init.items() if k in own and own[k].shape == v.shape})
        net.load_state_dict(own)
    net = net.to(device=device, memory_format=torch.channels_last)  # type: ignore[call-overload]
    epochs = epochs or config.epochs
    # Small populations (JAFFE: 150 faces) still get enough steps per epoch.
    steps = config.steps or max(min_steps, len(train_set.y) // batch_size)
    # Frozen layers (a pretrained network's first blocks) are left out of the optimizer.
    trained = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=epochs * steps, pct_start=0.15
    )
    history: list[dict[str, float]] = []
    best: tuple[float, dict[str, torch.Tensor]] = (-1.0, _cpu_state(net))
    held = -1
    start_epoch = 0
    if checkpoint is not None and checkpoint.exists():
        state = torch.load(checkpoint, weights_only=False)
        # A kept checkpoint (``models.train.states``) holds half-precision weights (loading casts them)
        # and no optimizer moments: they re-form in a few hundred steps, where the schedule and the
        # random streams go on exactly.
        net.load_state_dict(state["net"])
        if "optimizer" in state:
            optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        history, start_epoch = state["history"], state["epoch"] + 1
        accuracy, weights = state["best"]
        # No weights: the best epoch is the one just loaded.
        best = (accuracy, weights if weights is not None else _cpu_state(net))
        # Kept weights are the best epoch's (the first to reach its accuracy); none kept, the last epoch's.
        reached = [row["epoch"] for row in history if row["val_accuracy"] == accuracy]
        held = int(reached[0]) if weights is not None and reached else start_epoch - 1
        generator.set_state(state["generator"])
        rng = state["rng"]
        log.info("resumed from %s at epoch %d", checkpoint, start_epoch)

    weights = sampling_weights(train_set.y, config.balance, weight=train_set.weight)
    x_all = to_tensor(train_set.x).to(device)
    y_all = torch.from_numpy(train_set.y).to(device)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    targets = None
    if config.distill > 0:
        if train_set.soft is None:
            raise ValueError("config.distill needs the teachers' probabilities in train_set.soft")
        # One target per face: the smoothed label blended with what the teachers read in the face.
        smoothed = F.one_hot(torch.from_numpy(train_set.y), len(LABELS)).float()
        smoothed = smoothed * (1 - config.label_smoothing) + config.label_smoothing / len(LABELS)
        soft = torch.from_numpy(train_set.soft).float()
        targets = ((1 - config.distill) * smoothed + config.distill * soft).to(device)
    bf16 = bf16_autocast_pays(device)
    for epoch in range(start_epoch, epochs):
        started = time.time()
        net.train()
        order = torch.from_numpy(rng.choice(len(weights), size=steps * batch_size, p=weights)).to(device)
        total = 0.0
        for step in range(steps):
            idx = order[step * batch_size : (step + 1) * batch_size]
            x = augment(x_all[idx], erase=config.erase, generator=generator).contiguous(
                memory_format=torch.channels_last
            )
            y = y_all[idx]
            other, blend = None, 1.0
            if config.mixup > 0:
                # One blend per batch (mixup): the net learns from faces between two classes.
                blend = float(rng.beta(config.mixup, config.mixup))
                other = torch.randperm(len(idx), generator=generator, device=device)
                x = blend * x + (1 - blend) * x[other]
            elif config.cutmix > 0 and rng.random() < config.cutmix:
                other = torch.randperm(len(idx), generator=generator, device=device)
                x, blend = cutmix(x, x[other], rng)
            with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=bf16):
                logits = net(x)
            if targets is not None:
                target = targets[idx]
                if other is not None:
                    target = blend * target + (1 - blend) * target[other]
                loss = -(target * F.log_softmax(logits.float(), -1)).sum(-1).mean()
            else:
                loss = loss_fn(logits.float(), y)
                if other is not None:
                    loss = blend * loss + (1 - blend) * loss_fn(logits.float(), y[other])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach())
        scores = metrics(val_set.y, predict(net, val_set.x).argmax(1))
        row = {
            "epoch": epoch,
            "loss": total / steps,
            "val_accuracy": float(scores["accuracy"]),  # type: ignore[arg-type]
            "val_macro_recall": float(scores["macro_recall"]),  # type: ignore[arg-type]
            "seconds": time.time() - started,
        }
        history.append(row)
        log.info(json.dumps(row))
        if row["val_accuracy"] > best[0]:
            best, held = (row["val_accuracy"], _cpu_state(net)), epoch
        if checkpoint is not None:
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            # Written aside, then renamed: a run stopped mid-write leaves the last whole checkpoint.
            partial = checkpoint.with_name(checkpoint.name + ".partial")
            torch.save(
                {
                    "net": net.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(),
                    "history": history,
                    "best": best,
                    "epoch": epoch,
                    "generator": generator.get_state(),
                    "rng": rng,
                },
                partial,
            )
            os.replace(partial, checkpoint)
        if stop_after is not None and epoch + 1 - start_epoch >= stop_after:
            break
    if not history:
        raise ValueError("train ran no epoch: give it epochs beyond the checkpoint's")
    net = net.cpu()
    net.load_state_dict(best[1])
    # litert-torch reads channels_last weights as if they were contiguous and
    # silently converts a wrong model, so hand back plain contiguous weights.
    net = net.to(memory_format=torch.contiguous_format).eval()  # type: ignore[call-overload]
    return Trained(net, history, next(row for row in history if row["epoch"] == held))
