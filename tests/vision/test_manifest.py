"""The typed manifest: the committed ``ensemble.json`` reads and writes back byte for byte."""

from __future__ import annotations

import copy
import json
from dataclasses import replace

import pytest

from memegen.errors import ModelError
from memegen.vision.manifest import MANIFEST, SINGLE_VIEW, Manifest, MemberEntry
from tests.support import MODELS


def _raw() -> dict:
    raw: dict = json.loads((MODELS / MANIFEST).read_text())
    return raw


def test_the_committed_manifest_round_trips_byte_for_byte() -> None:
    text = (MODELS / MANIFEST).read_text()
    manifest = Manifest.read(MODELS)
    assert manifest.dumps() == text
    # The layout the build and the card write: one space of indent, a closing newline.
    assert manifest.dumps() == json.dumps(json.loads(text), indent=1) + "\n"
    assert Manifest.from_dict(manifest.to_dict()) == manifest


def test_members_are_typed() -> None:
    manifest = Manifest.read(MODELS)
    raw = _raw()
    assert [m.name for m in manifest.members] == [m["name"] for m in raw["members"]]
    for entry, written in zip(manifest.members, raw["members"], strict=True):
        assert (entry.file, entry.sha256, entry.input_size, entry.flip) == (
            written["file"],
            written["sha256"],
            written["input_size"],
            written["flip"],
        )
        assert entry.views == tuple(tuple(v) for v in written["views"])
        assert manifest.member(entry.name) is entry
    assert len(manifest.weights) == len(manifest.members)


def test_unknown_keys_are_kept_and_written_after_the_known_ones() -> None:
    raw = _raw()
    raw["members"][0]["colour_space"] = {"kind": "gray"}
    raw["built_by"] = "a later build"
    manifest = Manifest.from_dict(raw)
    assert manifest.members[0].extra == {"colour_space": {"kind": "gray"}}
    assert manifest.to_dict() == raw
    assert list(manifest.to_dict()["members"][0])[-1] == "colour_space"


def test_a_member_without_optional_keys_writes_none_of_them() -> None:
    entry = MemberEntry.from_dict({"name": "m", "file": "m.tflite", "sha256": "ab", "input_size": 40})
    assert entry.population is None and entry.views == SINGLE_VIEW and entry.flip is False
    assert entry.to_dict() == {
        "name": "m",
        "file": "m.tflite",
        "sha256": "ab",
        "input_size": 40,
        "flip": False,
        "views": [[0.0, 0.0, 1.0]],
    }


def test_fields_are_copies_not_the_callers_objects() -> None:
    raw = _raw()
    manifest = Manifest.from_dict(raw)
    raw["members"][0]["config"]["width"] = -1
    assert manifest.members[0].config is not None and manifest.members[0].config["width"] != -1
    written = manifest.to_dict()
    written["members"][0]["config"]["width"] = -2
    assert manifest.members[0].config["width"] != -2
    changed = replace(manifest.members[0], views=((0.0, 0.0, 1.0), (0.042, 0.0, 1.0)))
    assert changed.to_dict()["views"] == [[0.0, 0.0, 1.0], [0.042, 0.0, 1.0]]


@pytest.mark.parametrize("key", ["name", "file", "sha256", "input_size"])
def test_a_member_missing_what_loading_needs_is_a_model_error(key: str) -> None:
    raw = copy.deepcopy(_raw())
    del raw["members"][0][key]
    with pytest.raises(ModelError, match=key):
        Manifest.from_dict(raw)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"labels": "angry"}, "labels"),
        ({"members": {}}, "members"),
        ({"weights": [[0.5, "heavy"]]}, "weights"),
        ({"weights": None}, "weights"),
    ],
)
def test_a_manifest_whose_shape_cannot_work_is_a_model_error(change: dict[str, object], match: str) -> None:
    raw = _raw() | change
    with pytest.raises(ModelError, match=match):
        Manifest.from_dict(raw)


@pytest.mark.parametrize("views", ["wide", [[0.0, 0.0]], [None]])
def test_views_that_are_not_triples_are_a_model_error(views: object) -> None:
    raw = _raw()
    raw["members"][0]["views"] = views
    with pytest.raises(ModelError, match="views"):
        Manifest.from_dict(raw)
