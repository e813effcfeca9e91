"""A tiny real training run: prepare, search, train, quantize, combine, load."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from memegen.ensemble import Ensemble
from memegen.labels import LABELS


@pytest.fixture(scope="module")
def tiny_datasets(datasets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few images of every population and label, and one corrupt image."""
    root = tmp_path_factory.mktemp("datasets")
    for population in ("jaffe", "imfdb", "lfw", "fer2013/train", "fer2013/public_test"):
        for label in LABELS:
            target = root / population / label
            target.mkdir(parents=True)
            for path in sorted((datasets_dir / population / label).iterdir())[:4]:
                shutil.copy(path, target)
    (root / "lfw" / "happy" / "Broken_Person_0001.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return root


def test_smoke_training_run(tiny_datasets: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("torch", reason="training tools are in requirements-train.txt")
    from models.train import build, prepare

    data = tmp_path / "faces.npz"
    with caplog.at_level(logging.INFO):
        assert prepare.main(["--datasets", str(tiny_datasets), "--out", str(data), "--workers", "1"]) == 0
    assert "1 unreadable and skipped" in caplog.text
    out = tmp_path / "models"
    args = ["--data", str(data), "--out", str(out), "--work", str(tmp_path / "work"), "--trials", "1"]
    args += ["--search-epochs", "1", "--epochs", "1", "--small-epochs", "2", "--threads", "2"]
    assert build.main(args) == 0
    ensemble = Ensemble.from_dir(out)
    assert [m.name for m in ensemble.members] == ["fer2013", "lfw", "jaffe", "imfdb"]
    record = json.loads((out / "training.json").read_text())
    assert set(record["search"]) == {"fer2013", "lfw", "jaffe", "imfdb"}
    assert record["report"]["combination"]["chosen"] in {"average", "precision", "logloss"}


def test_missing_dataset_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from models.train import prepare

    assert prepare.main(["--datasets", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "expected DIR/<label>/<image>" in err[0]
