"""Dataset reading: identities, layout errors, unreadable images."""

from __future__ import annotations

from pathlib import Path

import pytest

from memegen.errors import DatasetError
from memegen.offline.datasets import identity_of, list_samples, read_gray


@pytest.mark.parametrize(
    ("name", "identity"),
    [
        ("KA.AN1.39.png", "KA"),
        ("KatrinaKaif_10.jpg", "KatrinaKaif"),
        ("Aaron_Eckhart_0001.jpg", "Aaron_Eckhart"),
        ("Training_10019449.jpg", None),
        ("PublicTest_123.jpg", None),
    ],
)
def test_identity_from_file_name(name: str, identity: str | None) -> None:
    assert identity_of(name) == identity


def test_missing_folder_names_the_layout(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="<label>/<image>"):
        list_samples(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="no labelled images"):
        list_samples(tmp_path)


def test_unreadable_images_read_as_none(tmp_path: Path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_bytes(b"not an image at all")
    assert read_gray(tmp_path / "empty.jpg") is None
    assert read_gray(tmp_path / "text.jpg") is None


def test_lists_labels_in_order(tmp_path: Path) -> None:
    for label in ("sad", "angry"):
        (tmp_path / label).mkdir()
        (tmp_path / label / "x_1.png").write_bytes(b"")
    (tmp_path / "notes").mkdir()  # not a label: ignored
    samples = list_samples(tmp_path)
    assert [s.label for s in samples] == [0, 4]


def test_splits_are_subject_disjoint(datasets_dir: Path) -> None:
    from models.train.prepare import VAL, VAL_SHARE, held_out, split_of

    for population in ("jaffe", "imfdb", "lfw"):
        samples = list_samples(datasets_dir / population)
        identities = sorted({s.identity for s in samples if s.identity})
        people = held_out(population, identities)
        splits: dict[str | None, set[int]] = {s.identity: set() for s in samples}
        for sample in samples:
            splits[sample.identity].add(split_of(population, sample, people))
        assert all(len(s) == 1 for s in splits.values()), population
        held = sum(VAL in s for s in splits.values()) / len(splits)
        assert held == pytest.approx(VAL_SHARE[population], abs=0.06)
