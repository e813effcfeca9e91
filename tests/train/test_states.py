"""Kept checkpoints (``models.train.states``): compact, committed, and a fresh checkout resumes from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training tools are in requirements-train.txt")

from models.train import states  # noqa: E402
from models.train.net import Config  # noqa: E402
from models.train.train import Split, train  # noqa: E402


def _faces(count: int, side: int = 16) -> Split:
    rng = np.random.default_rng(0)
    return Split(rng.integers(0, 255, (count, side, side), dtype=np.uint8), rng.integers(0, 7, count))


def test_a_kept_checkpoint_resumes_where_the_lost_one_stopped(tmp_path: Path) -> None:
    config = Config(size=16, width=4, stages=2, epochs=2, steps=2)
    work, kept = tmp_path / "work", tmp_path / "states"
    # The first session: one epoch of two, then the machine is gone with models/work.
    train(config, _faces(64), _faces(16), checkpoint=work / "member.ckpt", epochs=2, batch_size=8, stop_after=1)
    saved = states.keep(work / "member.ckpt", kept=kept)
    compact = torch.load(saved, weights_only=False)
    assert "optimizer" not in compact
    assert all(v.dtype == torch.float16 for v in compact["net"].values() if v.is_floating_point())
    first = compact["history"][0]
    # Its one epoch is its best: kept as the current weights, not a second copy.
    assert compact["best"] == (first["val_accuracy"], None)
    (work / "member.ckpt").unlink()
    # The next session, on a fresh checkout: the kept one is copied back and the run goes on at epoch 1.
    assert states.restore("member", work, kept=kept)
    assert not states.restore("member", work, kept=kept), "a checkpoint in work is never overwritten"
    history = train(config, _faces(64), _faces(16), checkpoint=work / "member.ckpt", batch_size=8).history
    assert [row["epoch"] for row in history] == [0, 1]
    assert history[0] == first, "epoch 0 was trained again instead of resumed"


def test_a_run_rebuilt_from_a_kept_state_says_which_epoch_it_holds(tmp_path: Path) -> None:
    """``keep`` gives up a best epoch before the last; the rebuilt run holds the last one and says so,
    so that its record quotes that epoch's accuracy, not the history's best."""
    config = Config(size=16, width=4, stages=2, epochs=2, steps=2)
    work, kept = tmp_path / "work", tmp_path / "states"
    train(config, _faces(64), _faces(16), checkpoint=work / "member.ckpt", batch_size=8)
    state = torch.load(work / "member.ckpt", weights_only=False)
    # Epoch 0 made the best (a run's peak before its end), with weights other than the last epoch's.
    state["history"][0]["val_accuracy"] = state["history"][1]["val_accuracy"] + 0.25
    state["best"] = (state["history"][0]["val_accuracy"], {k: v + 1 for k, v in state["net"].items()})
    torch.save(state, work / "member.ckpt")
    saved = states.keep(work / "member.ckpt", kept=kept)
    (work / "member.ckpt").unlink()
    states.restore("member", work, kept=kept)
    rebuilt = train(config, _faces(64), _faces(16), checkpoint=work / "member.ckpt", batch_size=8)
    assert len(rebuilt.history) == 2, "no epoch is trained again"
    assert rebuilt.held == rebuilt.history[1]
    last = torch.load(saved, weights_only=False)["net"]
    assert all(torch.equal(v, last[k].float()) for k, v in rebuilt.net.state_dict().items() if v.is_floating_point())


def test_a_kept_pretrained_checkpoint_fits_the_repository(tmp_path: Path) -> None:
    """EfficientNet-Lite0's kept checkpoint: under 10 MB, each weight once (the frozen blocks are the
    backbone's own modules, not registered a second time)."""
    pytest.importorskip("efficientnet_lite_pytorch", reason="training tools are in requirements-train.txt")
    config = Config(arch="lite0", size=32, freeze=3, epochs=2, steps=1)
    work = tmp_path / "work"
    net = train(config, _faces(32, 32), _faces(8, 32), checkpoint=work / "lite.ckpt", batch_size=8, stop_after=1).net
    saved = states.keep(work / "lite.ckpt", kept=tmp_path / "states")
    assert saved.stat().st_size < 10e6
    compact = torch.load(saved, weights_only=False)
    assert sorted(compact["net"]) == sorted(net.state_dict())
    assert not [key for key in compact["net"] if key.startswith("features.frozen")]
