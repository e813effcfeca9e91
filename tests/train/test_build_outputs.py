"""What the build writes, through the typed manifest: the committed files come out as they are."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch", reason="the build's tools are in requirements-train.txt")

from memegen.vision.manifest import Manifest
from models.train import build
from models.train.members import Candidate
from models.train.outputs import WorkRecord, manifest_of

MODELS = Path(__file__).resolve().parents[2] / "models"


def test_the_committed_members_records_come_out_byte_for_byte() -> None:
    """The shipped members, as candidates of a build (their entries and what their build measured)."""
    manifest = Manifest.read(MODELS)
    record = json.loads((MODELS / "training.json").read_text())
    for entry, written in zip(manifest.members, record["members"], strict=True):
        candidate = Candidate(
            entry=entry,
            history=written["history"],
            val=written["val"],
            public_test_float=written["public_test_float"],
            shipped=written.get("shipped"),
            held_epoch=written.get("held_epoch"),
        )
        assert json.dumps(candidate.record(), indent=1) == json.dumps(written, indent=1)


def test_the_build_writes_the_committed_manifest_but_the_cards_figures() -> None:
    committed = json.loads((MODELS / "ensemble.json").read_text())
    manifest = Manifest.read(MODELS)
    members = [Candidate(entry=entry, history=[], val={}) for entry in manifest.members]
    metrics = committed["metrics"]
    ensemble = {"accuracy": metrics["public_test_accuracy"], "macro_recall": metrics["public_test_macro_recall"]}
    written = manifest_of(
        {"fer2013_x": np.zeros((1, 48, 48), np.uint8)},
        members,
        weights=np.array(committed["weights"]),
        method=committed["combination"],
        report={"public_test": {"ensemble": ensemble}},
    ).to_dict()
    # The card adds each population's validation accuracy to the build's metrics.
    del committed["metrics"]["val"]
    assert json.dumps(written, indent=1) == json.dumps(committed, indent=1)


def test_the_work_record_resumes_the_searches_and_keeps_the_last_recipes(tmp_path: Path) -> None:
    assert WorkRecord.read(tmp_path) == WorkRecord(tmp_path / "build.json")
    trial = {"config": {"size": 48}, "init": "scratch", "val_accuracy": 0.5}
    first = WorkRecord.read(tmp_path).with_search("jaffe", [trial])
    first.write()
    assert WorkRecord.read(tmp_path).search == {"jaffe": [trial]}
    recipes = [{"recipe": "fer_a"}]
    finished = WorkRecord(first.path, first.search, [], recipes)
    finished.write(members=[{"name": "jaffe"}], report={"views": {}})
    again = WorkRecord.read(tmp_path)
    assert (again.search, again.members, again.fer_recipes) == ({"jaffe": [trial]}, [{"name": "jaffe"}], recipes)


def test_the_command_line_reads_into_plain_options() -> None:
    options = build.Options.parse(["--states", "a.pt", "b.pt", "--greedy", "2", "--budget-ms", "4"])
    assert options.states == (Path("a.pt"), Path("b.pt")) and options.greedy == 2 and options.budget_ms == 4.0
    assert (options.out, options.work, options.keep, options.shipped) == (Path("models"), Path("models/work"), (), ())


def test_a_conversion_is_named_by_the_weights_configuration_and_calibration_it_follows_from() -> None:
    """A build run again reads back the conversions of members it exported before, and only of those."""
    import torch

    from models.train.members import conversion_key
    from models.train.net import Config, ExpressionNet

    config = Config(size=16, width=4, stages=2)
    torch.manual_seed(0)
    net = ExpressionNet(config).eval()
    faces = np.random.default_rng(0).integers(0, 255, (8, 16, 16), dtype=np.uint8)
    key = conversion_key(net, config, faces)
    assert conversion_key(net, config, faces.copy()) == key
    assert conversion_key(net, config, faces[:4]) != key  # other calibration faces, other int8 ranges
    other = ExpressionNet(config).eval()
    other.load_state_dict(net.state_dict())
    assert conversion_key(other, config, faces) == key
    with torch.no_grad():
        next(p for p in other.parameters() if p.ndim == 4)[0, 0, 0, 0] += 1e-3
    assert conversion_key(other, config, faces) != key
    assert conversion_key(net, Config(size=16, width=4, stages=2, dropout=0.5), faces) != key


def test_the_cards_training_table_quotes_the_epoch_a_member_holds() -> None:
    """A member rebuilt from a kept state holds its last epoch, not its history's best: the card says so."""
    from models.train.card import training_section

    history = [
        {"epoch": 0, "val_accuracy": 0.60, "seconds": 1.0},
        {"epoch": 1, "val_accuracy": 0.68, "seconds": 1.0},
        {"epoch": 2, "val_accuracy": 0.67, "seconds": 1.0},
    ]
    config = {"size": 48, "width": 8, "stages": 2, "lr": 0.001, "weight_decay": 0.0, "dropout": 0.0}
    recipe = {"recipe": "fer_x", "data": "fer2013", "config": config, "history": history}

    def row(held: dict[str, int]) -> str:
        record = {"members": [], "search": {}, "report": {"fer_recipes": [recipe | held]}}
        return next(line for line in training_section(record) if line.startswith("| fer_x "))

    assert row({"held_epoch": 2}).endswith("| 3 | 67.0% | 3 |")
    assert row({}).endswith("| 2 | 68.0% | 3 |"), "without a held epoch, the best one"
    # A member ship added after the build is listed too, from its own record.
    joined: dict[str, Any] = {"name": "fer2013_3", "recipe": "fer_z", "population": "fer2013"}
    joined |= {"datasets": "FER2013 and more", "config": config, "history": history, "held_epoch": 2}
    record = {"members": [joined], "search": {}, "report": {"fer_recipes": [recipe]}}
    rows = [line for line in training_section(record) if line.startswith(("| fer_x ", "| fer_z "))]
    assert len(rows) == 2 and rows[1].startswith("| fer_z | fer2013_3 | FER2013 and more | 48 px")
    assert rows[1].endswith("| 3 | 67.0% | 3 |")
    # Its data is named as the build's recipes' is, not in the member record's long sentence.
    from models.train.members import FER_WITH_OTHERS

    record["members"] = [joined | {"datasets": FER_WITH_OTHERS["all"]}]
    shown = next(line for line in training_section(record) if line.startswith("| fer_z "))
    assert shown.startswith("| fer_z | fer2013_3 | FER2013 train + LFW, JAFFE, IMFDB train | 48 px")
