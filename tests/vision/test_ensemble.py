"""The committed ensemble: loads, validates itself, and classifies real faces."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from memegen.errors import ModelError
from memegen.labels import LABELS
from memegen.vision.detect import FaceDetector
from memegen.vision.ensemble import MANIFEST, Ensemble
from tests.support import MODELS


def _load() -> tuple[dict, dict[str, bytes]]:
    manifest = json.loads((MODELS / MANIFEST).read_text())
    files = {m["file"]: (MODELS / m["file"]).read_bytes() for m in manifest["members"]}
    return manifest, files


def test_manifest_describes_its_members(ensemble: Ensemble) -> None:
    members = {m["population"] for m in ensemble.manifest["members"]}
    # The other populations' members stay only where they earn their weight (see the card).
    assert "fer2013" in members and members <= {"fer2013", "lfw", "jaffe", "imfdb"}
    assert ensemble.manifest["labels"] == list(LABELS)
    assert ensemble.weights.shape == (len(ensemble.members), 7)
    for entry in ensemble.manifest["members"]:
        assert entry["sha256"] and entry["input_size"] and entry["datasets"]


def test_members_are_full_int8(ensemble: Ensemble) -> None:
    for member in ensemble.members:
        details = member._interpreter.get_tensor_details()
        kinds = {np.dtype(d["dtype"]).name for d in details}
        assert "float32" not in kinds, member.name  # weights and activations all quantized


def test_members_hold_no_layout_transposes(ensemble: Ensemble) -> None:
    # litert-torch padded EfficientNet-Lite0's activations in NCHW between two transposes: 32 of them
    # took half the 96 px member's time. models.train.graph folds them (the same outputs, bit for bit).
    for member in ensemble.members:
        ops = {op["op_name"] for op in member._interpreter._get_ops_details()}
        assert "TRANSPOSE" not in ops, member.name


def test_refuses_a_member_whose_hash_differs() -> None:
    manifest, files = _load()
    name = manifest["members"][0]["file"]
    files[name] = files[name][:-8] + bytes(8)
    with pytest.raises(ModelError, match="hash"):
        Ensemble(manifest, files)


def test_refuses_a_member_whose_shape_differs() -> None:
    manifest, files = _load()
    manifest = copy.deepcopy(manifest)
    manifest["members"][0]["input_size"] += 8
    with pytest.raises(ModelError, match="do not match"):
        Ensemble(manifest, files)


def test_refuses_a_missing_member_file(tmp_path: Path) -> None:
    manifest, files = _load()
    files.pop(manifest["members"][-1]["file"])
    with pytest.raises(ModelError, match="missing"):
        Ensemble(manifest, files)
    with pytest.raises(ModelError, match="cannot load"):
        Ensemble.from_dir(tmp_path)


def test_refuses_labels_in_another_order() -> None:
    manifest, files = _load()
    manifest["labels"] = list(reversed(LABELS))
    with pytest.raises(ModelError, match="labels"):
        Ensemble(manifest, files)


def test_probabilities_are_a_distribution(ensemble: Ensemble) -> None:
    face = np.random.default_rng(0).integers(0, 255, size=(64, 64), dtype=np.uint8)
    scores = ensemble.classify(face)
    assert len(scores.probabilities) == 7
    assert sum(scores.probabilities) == pytest.approx(1.0, abs=1e-4)
    assert scores.label in LABELS
    assert set(scores.as_dict()) == set(LABELS)


def test_smiling_faces_read_as_happy(datasets_dir: Path, ensemble: Ensemble) -> None:
    """JAFFE's happy faces, all subjects, are mostly read as happy."""
    from memegen.offline.datasets import face_of, read_gray

    detector = FaceDetector.from_dir(MODELS / "blazeface")
    paths = sorted((datasets_dir / "jaffe" / "happy").iterdir())
    labels = []
    for path in paths:
        gray = read_gray(path)
        assert gray is not None
        face, _ = face_of(gray, detector, size=ensemble.crop.size, scale=ensemble.crop.scale, shift=ensemble.crop.shift)
        labels.append(ensemble.classify(face).label)
    assert labels.count("happy") / len(labels) > 0.6


def test_the_crop_comes_from_the_manifest() -> None:
    manifest, files = _load()
    manifest = copy.deepcopy(manifest)
    manifest["crop"].update(size=40, scale=1.4, shift=0.05)
    crop = Ensemble(manifest, files).crop
    assert (crop.size, crop.scale, crop.shift) == (40, 1.4, 0.05)


@pytest.mark.parametrize(
    "change", [{"size": 0}, {"scale": -1.0}, {"shift": 3.0}, {"color": "rgb"}, {"scale": "wide"}, {"size": None}]
)
def test_refuses_a_crop_that_cannot_work(change: dict[str, object]) -> None:
    manifest, files = _load()
    manifest = copy.deepcopy(manifest)
    manifest["crop"].update(change)
    with pytest.raises(ModelError, match="crop"):
        Ensemble(manifest, files)


def test_the_engine_cuts_faces_as_the_manifest_says(photos_dir: Path, detector: FaceDetector) -> None:
    """A manifest with another crop changes what the members read (not constants in the code)."""
    from memegen.meme.captions import CaptionBank
    from memegen.meme.engine import Engine
    from memegen.settings import Settings

    rgb = np.asarray(Image.open(photos_dir / "obama.jpg").convert("RGB"))
    manifest, files = _load()
    readings = []
    for scale in (manifest["crop"]["scale"], 2.0):
        changed = copy.deepcopy(manifest)
        changed["crop"]["scale"] = scale
        engine = Engine(
            detector=detector, ensemble=Ensemble(changed, files), captions=CaptionBank.load(), settings=Settings()
        )
        ((_face, scores),) = engine.read_faces(rgb, scale=1.0)
        readings.append(scores.probabilities)
    assert readings[0] != readings[1]


@pytest.mark.parametrize("views", [[[0.5, 0.0, 1.0]], [[0.0, 0.0, 3.0]], [], [[0.0, 0.0]], "wide"])
def test_refuses_views_that_cannot_work(views: object) -> None:
    manifest, files = _load()
    manifest = copy.deepcopy(manifest)
    manifest["members"][0]["views"] = views
    with pytest.raises(ModelError, match="views"):
        Ensemble(manifest, files)


def test_each_member_reads_the_views_its_manifest_names() -> None:
    """Views from the manifest, not from the code: another set gives other readings."""
    manifest, files = _load()
    face = np.random.default_rng(1).integers(0, 255, size=(48, 48), dtype=np.uint8)
    readings = []
    for views in ([[0.0, 0.0, 1.0]], [[0.0, 0.0, 1.0], [0.1, 0.0, 1.0], [0.0, 0.1, 0.9]]):
        changed = copy.deepcopy(manifest)
        for entry in changed["members"]:
            entry["views"] = views
        ensemble = Ensemble(changed, files)
        assert all(m.views == tuple(tuple(v) for v in views) for m in ensemble.members)
        readings.append(ensemble.classify(face).probabilities)
    assert readings[0] != readings[1]


def test_each_member_reads_the_face_cut_at_its_own_side() -> None:
    """A member with a ``crop_size`` reads the face cut at that side (resized to its input), the others the
    ensemble's cut; the engine's cuts are the sides the members need, each once."""
    from memegen.vision.ensemble import at_size

    manifest, files = _load()
    changed = copy.deepcopy(manifest)
    # The first two members, both cut at the ensemble's side; then the second asks for 96 px.
    changed["members"], changed["weights"] = changed["members"][:2], changed["weights"][:2]
    for entry in changed["members"]:
        entry.pop("crop_size", None)
    assert Ensemble(changed, files).crop_sizes == (48,)
    changed["members"][1]["crop_size"] = 96
    ensemble = Ensemble(changed, files)
    assert ensemble.crop_sizes == (48, 96)
    rng = np.random.default_rng(2)
    cuts = {48: rng.integers(0, 255, size=(48, 48), dtype=np.uint8), 96: rng.integers(0, 255, (96, 96), np.uint8)}
    probs = ensemble.member_probabilities(cuts)
    first, second = ensemble.members
    np.testing.assert_array_equal(probs[0], first.predict(cuts[48]))
    np.testing.assert_array_equal(probs[1], second.predict(at_size(cuts[96], second.size)))
    assert not np.array_equal(probs[1], second.predict(cuts[48]))


def test_a_crop_size_that_cannot_work_is_refused() -> None:
    manifest, files = _load()
    changed = copy.deepcopy(manifest)
    changed["members"][0]["crop_size"] = 4000
    with pytest.raises(ModelError, match="crop_size"):
        Ensemble(changed, files)
