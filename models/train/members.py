"""The ensemble's candidate members: trained in full, exported to int8 TFLite, checked and scored.

A ``Candidate`` is a member's manifest entry (``memegen.vision.manifest.MemberEntry``, what ``ensemble.json``
will say of it) and what only the build keeps: its training history, its validation scores, its
float weights. The build's record (``training.json``) holds both; the manifest the entry alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from memegen.vision.ensemble import sha256
from memegen.vision.manifest import MemberEntry
from models.train.export import tflite_predict, to_float_tflite, to_int8_tflite
from models.train.net import Config, ExpressionNet, macs
from models.train.search import FerStart, Trial
from models.train.train import TRAIN, VAL, load_split, metrics, predict, train

log = logging.getLogger("build")

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
INPUT = "grayscale face crop, uint8 0..255, resized (INTER_AREA) from the crop"

# Accuracy, macro recall, per-class recall, confusion and log-loss of probabilities (``scores_of``).
Scores = dict[str, Any]


def scores_of(y: np.ndarray, probs: np.ndarray) -> Scores:
    """``models.train.train.metrics`` of the most likely labels, and the log-loss of the probabilities."""
    scores = metrics(y, probs.argmax(1))
    scores["log_loss"] = float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-7, 1))))
    return scores


@dataclass(frozen=True, kw_only=True)
class Candidate:
    """A member the build may ship: its manifest entry and what the build measured of it.

    ``val`` holds its validation ``float`` and ``int8`` scores; ``public_test_float`` its float score
    on FER2013's public test (measured once every choice is made); ``shipped`` what the build that
    trained a member carried over from the shipped ensemble measured; ``state`` its float weights
    (``None`` for a carried member: its build kept them); ``held_epoch`` the epoch whose weights it
    holds where that is not its history's best (a run rebuilt from a kept state, ``models.train.states``).
    """

    entry: MemberEntry
    history: list[dict[str, Any]]
    val: dict[str, Scores]
    public_test_float: Scores | None = None
    shipped: dict[str, float] | None = None
    state: dict[str, torch.Tensor] | None = None
    held_epoch: int | None = None

    @property
    def name(self) -> str:
        """The member's name (its entry's)."""
        return self.entry.name

    @property
    def population(self) -> str:
        """The population it was trained for (every candidate of the build has one)."""
        assert self.entry.population is not None
        return self.entry.population

    def with_entry(self, **changes: Any) -> Candidate:
        """The same candidate with its manifest entry changed (a name, a file, its views)."""
        return replace(self, entry=replace(self.entry, **changes))

    def record(self) -> dict[str, Any]:
        """The member as the build's record (``training.json``'s ``members``) holds it: the manifest's
        entry, what the build measured, then the views it chose last."""
        entry = self.entry.to_dict()
        views = entry.pop("views")
        measured: dict[str, Any] = {"history": self.history, "val": self.val}
        if self.public_test_float is not None:
            measured["public_test_float"] = self.public_test_float
        if self.shipped is not None:
            measured["shipped"] = self.shipped
        if self.held_epoch is not None:
            measured["held_epoch"] = self.held_epoch
        return entry | measured | {"views": views}


def load_net(config: Config, state: dict[str, torch.Tensor]) -> ExpressionNet:
    """The network of ``config`` with the float weights ``state``."""
    net = ExpressionNet(config)
    net.load_state_dict(state)
    return net


def build_member(
    name: str,
    population: str,
    data: dict[str, np.ndarray],
    chosen: Trial,
    *,
    epochs: int,
    init: FerStart | None,
    out_dir: Path,
    work: Path,
    seed: int,
) -> Candidate:
    """Train the chosen configuration in full, then export it (``export_member``)."""
    config = replace(Config(**chosen["config"]), epochs=epochs)
    net, history, _ = train(
        config,
        load_split(data, population, TRAIN, config.size),
        load_split(data, population, VAL, config.size),
        seed=seed,
        init=init.state if chosen["init"] == "fer2013" and init else None,
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
    history: list[dict[str, Any]],
    init: str,
    out_dir: Path,
    work: Path,
    seed: int,
    datasets: str | None = None,
) -> Candidate:
    """Export a trained member to float and int8 TFLite, check the conversion, and score both.

    ``datasets`` says what it learnt from, when that is more than its population's train split.
    """
    train_set = load_split(data, population, TRAIN, config.size)
    val_set = load_split(data, population, VAL, config.size)
    net = net.to(memory_format=torch.contiguous_format).eval()  # type: ignore[call-overload]
    calibration = train_set.x[np.random.default_rng(seed).permutation(len(train_set.x))[:400]]
    float_model, int8_model = converted_models(net, config, calibration, cache=work / "exports")
    converted = tflite_predict(float_model, val_set.x[:200])
    expected = predict(net, val_set.x[:200])
    if not np.allclose(converted, expected, atol=1e-3):
        raise RuntimeError(
            f"{name}: the TFLite conversion differs from PyTorch by {np.abs(converted - expected).max()}"
        )
    (out_dir / f"{name}.tflite").write_bytes(int8_model)
    (work / f"{name}.float.tflite").write_bytes(float_model)
    val_float = tflite_predict(float_model, val_set.x)
    val_int8 = tflite_predict(int8_model, val_set.x)
    candidate = Candidate(
        entry=exported_entry(
            name,
            int8_model,
            config,
            population=population,
            datasets=datasets or POPULATION_INFO[population],
            init=init,
            float_bytes=len(float_model),
        ),
        history=history,
        val={"float": scores_of(val_set.y, val_float), "int8": scores_of(val_set.y, val_int8)},
        state=net.state_dict(),
    )
    log.info(
        "member %s: val float %.4f int8 %.4f",
        name,
        candidate.val["float"]["accuracy"],
        candidate.val["int8"]["accuracy"],
    )
    return candidate


# Raised whenever the export writes other graphs for the same weights, so that conversions read back
# from a build's cache are those the export writes now. 2: pads folded into TFLite's layout.
EXPORT_VERSION = 2


def conversion_key(net: ExpressionNet, config: Config, calibration: np.ndarray) -> str:
    """What a member's conversions follow from: its configuration, its weights, its calibration faces,
    and the export's own version (``EXPORT_VERSION``)."""
    digest = hashlib.sha256(f"{EXPORT_VERSION}:".encode() + json.dumps(config.to_dict(), sort_keys=True).encode())
    for key, tensor in net.state_dict().items():
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    digest.update(np.ascontiguousarray(calibration).tobytes())
    return digest.hexdigest()


def converted_models(
    net: ExpressionNet, config: Config, calibration: np.ndarray, *, cache: Path
) -> tuple[bytes, bytes]:
    """The float and int8 TFLite models of a trained network, converted once for the same weights.

    A conversion is most of a member's export (tens of seconds, against a second to score it), and
    a build run again (after a stop, or a second build on the same ``--work``) exports the very
    members the first one did: those are read back from ``cache``, named by ``conversion_key``.
    """
    key = conversion_key(net, config, calibration)
    float_path, int8_path = cache / f"{key}.float.tflite", cache / f"{key}.int8.tflite"
    if float_path.exists() and int8_path.exists():
        log.info("conversions of %s... read back from %s", key[:12], cache)
        return float_path.read_bytes(), int8_path.read_bytes()
    float_model = to_float_tflite(net, size=config.size)
    int8_model = to_int8_tflite(net, calibration)
    cache.mkdir(parents=True, exist_ok=True)
    for path, model in ((float_path, float_model), (int8_path, int8_model)):
        # Written aside, then renamed: a build stopped mid-write leaves no half model to read back.
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(model)
        partial.replace(path)
    return float_model, int8_model


def exported_entry(
    name: str, model: bytes, config: Config, *, population: str, datasets: str, init: str, **more: Any
) -> MemberEntry:
    """The manifest entry of an int8 member exported from ``config``'s network (``more``: other fields)."""
    return MemberEntry(
        name=name,
        file=f"{name}.tflite",
        sha256=sha256(model),
        bytes=len(model),
        input_size=config.size,
        input=INPUT,
        flip=True,
        population=population,
        datasets=datasets,
        config=config.to_dict(),
        init=init,
        macs=macs(config),
        **more,
    )


def trained_fer_members(paths: list[Path], count: int) -> tuple[list[dict[str, Any]], list[Trial]]:
    """The ``count`` best FER2013 members trained by ``models.train.fer`` (or ``.gpu``), and their search's trials.

    Each member is its file's record (``name``, ``config``, ``state``, ``history``, ``val_accuracy``,
    ``data``, ``teachers``), as those tools saved it.
    """
    members = sorted((torch.load(path, weights_only=False) for path in paths), key=lambda m: -m["val_accuracy"])
    trials: list[Trial] = []
    for folder in sorted({path.parent for path in paths}):
        record = json.loads((folder / "search.json").read_text())
        trials += [{**t, "init": "scratch"} for t in record["trials"]]
    return members[:count], trials
