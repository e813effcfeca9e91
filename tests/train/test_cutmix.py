"""Cutmix: the target blend a training face gets is the share of its own pixels left."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training tools are in requirements-train.txt")

from models.train.train import cutmix  # noqa: E402


def test_the_share_left_is_the_area_not_pasted() -> None:
    rng = np.random.default_rng(0)
    faces, other = torch.zeros(3, 1, 48, 48), torch.ones(3, 1, 48, 48)
    shares = []
    for _ in range(200):
        mixed, share = cutmix(faces, other, rng)
        # Every face gets the same rectangle; its pixels come from the other face, the rest stay.
        assert torch.equal(mixed[0], mixed[2])
        assert share == pytest.approx(1 - float(mixed[0].mean()), abs=1e-6)  # float32 mean
        shares.append(share)
    assert faces.abs().sum() == 0, "the batch itself is left as it was"
    # Rectangles clipped at the edges leave more of the face: shares run from about 0 to 1.
    assert min(shares) < 0.2 and max(shares) > 0.95
